"""A downloaded model is untrusted input: what its folder must be before anything is built.

A "fine-tune" found online is a folder of JSON files and weights someone else wrote. The
libraries build whatever a config declares and read whatever a path points to, so before
they see the folder:

- every entry is a regular file or a folder; a link must end at a regular file inside the
  model (a Hugging Face cache snapshot links into its repository's `blobs/`, which counts
  as inside); a link to `/dev/urandom` or a FIFO named `tokenizer.json` is refused by name;
- every small file (configs, tokenizer files, shard indexes) has a size cap (CLIP's
  tokenizer.json is 2 MiB; a 400 MiB one is not a tokenizer);
- the sizes a config declares are bounded (`block_out_channels` of 100000 asks for
  160 GB; `layers_per_block` of a million builds for minutes), checked before building;
- a safetensors header is read by us with caps on its bytes and entries (a header of a
  million tensors cost 30 s and 1.9 GB in the library's parser);
- the tensors the weights hold are compared with those the config describes, on a model
  built on the meta device (no memory): missing tensors are named instead of the
  library's "Cannot copy out of meta tensor", a shape that differs is named too.

Every refusal is a ModelError naming the file and what to do.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.errors import InputError, ModelError
from engine.io.untrusted import parse_json, read_bytes

MIB = 1 << 20
MAX_SMALL_FILE_BYTES = 16 * MIB  # configs, tokenizer files, indexes (CLIP's vocab: 2 MiB)
MAX_ENTRIES = 20_000  # files and folders in a model folder (SD 1.x: about 20)
MAX_HEADER_BYTES = 16 * MIB  # a full SD 1.x checkpoint's header: about 200 KiB
MAX_TENSORS = 50_000  # a full SD 1.x checkpoint with EMA weights: about 2,300
DAMAGED = "The model is damaged or not what it says; download it again or use another."
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".pkl", ".msgpack", ".onnx")

# Far above SD 1.x's own numbers (shown after #), far below what takes a machine down.
UNET_BOUNDS = {
    "block_out_channels": 4096,  # 320, 640, 1280, 1280
    "layers_per_block": 8,  # 2
    "cross_attention_dim": 4096,  # 768
    "attention_head_dim": 4096,  # 8
    "num_attention_heads": 4096,
    "transformer_layers_per_block": 16,  # 1
    "in_channels": 64,  # 4
    "out_channels": 64,  # 4
    "norm_num_groups": 1024,  # 32
    "sample_size": 1024,  # 64
}
VAE_BOUNDS = {
    "block_out_channels": 4096,  # 128, 256, 512, 512
    "layers_per_block": 8,  # 2
    "latent_channels": 64,  # 4
    "in_channels": 64,
    "out_channels": 64,
    "norm_num_groups": 1024,
    "sample_size": 8192,  # 512
}
TEXT_BOUNDS = {
    "hidden_size": 4096,  # 768
    "intermediate_size": 16384,  # 3072
    "num_hidden_layers": 64,  # 12
    "num_attention_heads": 128,  # 12
    "max_position_embeddings": 4096,  # 77
    "vocab_size": 1_000_000,  # 49408
    "projection_dim": 4096,  # 768
}
MAX_BLOCKS = 8  # entries of block_out_channels (4)


# -- the folder's entries ----------------------------------------------------------------
def containment_root(folder: Path) -> Path:
    """Where the model's links may point: the folder, or for a Hugging Face cache
    snapshot (`models--org--name/snapshots/<rev>`) the repository folder holding blobs/."""
    folder = Path(os.path.realpath(folder))
    if folder.parent.name == "snapshots":
        return folder.parent.parent
    return folder


def check_folder_entries(folder: Path) -> None:
    """ModelError unless every entry under folder is a folder or a regular file (links
    only to regular files inside the model) and every small file is within its cap."""
    root = containment_root(folder)
    count = 0
    pending = [Path(folder)]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as exc:
            raise ModelError(f"Cannot read the model folder {current}: {exc.strerror}.") from exc
        for entry in entries:
            count += 1
            if count > MAX_ENTRIES:
                raise ModelError(
                    f"{folder} holds more than {MAX_ENTRIES:,} files; it is not a model "
                    "folder. Point to the folder holding model_index.json."
                )
            path = Path(entry.path)
            if entry.is_symlink():
                info = _link_target(path, root)
            else:
                info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                if not entry.is_symlink():  # a linked folder is not walked twice
                    pending.append(path)
                continue
            if not stat.S_ISREG(info.st_mode):
                raise ModelError(
                    f"{path} is not a regular file (a device, pipe or socket); a model "
                    f"folder holds files only. {DAMAGED}"
                )
            if not path.name.endswith(WEIGHT_SUFFIXES) and info.st_size > MAX_SMALL_FILE_BYTES:
                raise ModelError(
                    f"{path}: {info.st_size / MIB:.0f} MiB is far too large for a model's "
                    f"{_kind(path)} (at most {MAX_SMALL_FILE_BYTES // MIB} MiB). {DAMAGED}"
                )


def _link_target(path: Path, root: Path) -> os.stat_result:
    target = Path(os.path.realpath(path))
    try:
        info = os.stat(target)
    except OSError as exc:
        raise ModelError(f"{path} is a link to {target}, which cannot be read. {DAMAGED}") from exc
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise ModelError(
            f"{path} is a link to {target}, which is not a regular file (a device, pipe or "
            f"socket); a model folder holds files only. {DAMAGED}"
        )
    if not target.is_relative_to(root):
        raise ModelError(
            f"{path} is a link to {target}, outside the model folder {root}; a model's "
            f"files must be inside it. {DAMAGED}"
        )
    return info


def _kind(path: Path) -> str:
    if path.parent.name == "tokenizer":
        return "tokenizer file"
    return "JSON file" if path.suffix == ".json" else "small file"


def read_model_json(path: Path) -> dict[str, Any]:
    """A model's JSON file read as untrusted input: a regular file within the cap, no
    duplicate keys, a JSON object (ModelError naming it otherwise)."""
    try:
        data = read_bytes(path, what="model's JSON file", limit=MAX_SMALL_FILE_BYTES)
    except InputError as exc:
        raise ModelError(f"{exc} {DAMAGED}") from exc
    value = _parse(data, path, "model's JSON file", MAX_ENTRIES * 10)
    if not isinstance(value, dict):
        raise ModelError(
            f"Cannot read {path}: it holds a JSON {type(value).__name__}, not an object "
            f"({{...}}). {DAMAGED}"
        )
    return value


def _parse(data: bytes, path: Path, what: str, max_items: int, prefix: str = "Cannot read") -> Any:
    try:
        return parse_json(data, path=path, what=what, max_items=max_items)
    except InputError as exc:
        raise ModelError(f"{prefix} {exc} {DAMAGED}") from exc


# -- declared sizes ----------------------------------------------------------------------
def check_config_bounds(cfg: dict[str, Any], bounds: dict[str, int], where: str) -> None:
    """ModelError when a size the config declares is not a whole number in 1..bound
    (a list of them for per-block values), before anything is built from it."""
    for key, bound in bounds.items():
        if key not in cfg or cfg[key] is None:
            continue
        value = cfg[key]
        values = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)) and not 1 <= len(values) <= MAX_BLOCKS:
            raise ModelError(
                f"{where}: {key} lists {len(values)} values; a Stable Diffusion 1.x model "
                f"has 1 to {MAX_BLOCKS}. {DAMAGED}"
            )
        for item in values:
            whole = isinstance(item, int) and not isinstance(item, bool)
            if not whole or not 1 <= item <= bound:
                raise ModelError(
                    f"{where}: {key} is {_short(value)}; each must be a whole number from 1 "
                    f"to {bound:,} (building it would ask for more memory than any machine "
                    f"has, or for hours). {DAMAGED}"
                )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- safetensors headers -----------------------------------------------------------------
def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes in a .safetensors file's header, read with caps on its
    size and entries (the file's 8-byte length, then that much JSON)."""
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ModelError(f"{path} is not a regular file. {DAMAGED}")
            head = f.read(8)
            if len(head) < 8:
                raise ModelError(f"{path} is not a .safetensors file (too short). {DAMAGED}")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES or 8 + length > info.st_size:
                raise ModelError(
                    f"{path} is not a readable .safetensors file: its header claims "
                    f"{length:,} bytes (at most {MAX_HEADER_BYTES // MIB} MiB, within the "
                    f"file). {DAMAGED}"
                )
            raw = f.read(length)
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc.strerror}.") from exc
    # 4 entries per tensor (the tensor, dtype, shape, offsets): a million stop early
    readable = "Not a readable .safetensors file:"
    header = _parse(raw, path, "safetensors header", 5 * MAX_TENSORS, prefix=readable)
    if not isinstance(header, dict):
        raise ModelError(f"{path} is not a readable .safetensors file. {DAMAGED}")
    header.pop("__metadata__", None)
    if len(header) > MAX_TENSORS:
        raise ModelError(
            f"{path} lists {len(header):,} tensors; a Stable Diffusion 1.x checkpoint has "
            f"a few thousand at most. {DAMAGED}"
        )
    shapes = {}
    for name, entry in header.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            raise ModelError(f"{path}: the tensor {name!r} has no valid shape. {DAMAGED}")
        shapes[name] = tuple(shape)
    return shapes


def weight_files(component_dir: Path, variant: str | None) -> list[Path]:
    """The .safetensors files a component loads: the shards an index names, or the
    files of the variant (`x.fp16.safetensors`) or plain ones (`x.safetensors`)."""
    indexes = sorted(
        p
        for p in component_dir.glob("*.safetensors.index*.json")
        if (variant is None) == (p.name.endswith(".safetensors.index.json"))
        or (variant is not None and p.name.endswith(f".index.{variant}.json"))
    )
    if indexes:
        weight_map = read_model_json(indexes[0]).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ModelError(f"Cannot read {indexes[0]}: it has no weight_map. {DAMAGED}")
        shards = sorted({str(v) for v in weight_map.values()})
        for shard in shards:
            if not shard or shard in (".", "..") or "/" in shard or "\\" in shard:
                raise ModelError(
                    f"{indexes[0]} names the shard {shard!r}, which is not a file in "
                    f"{component_dir}. {DAMAGED}"
                )
        return [component_dir / s for s in shards if s.endswith(".safetensors")]
    files = []
    for path in sorted(component_dir.glob("*.safetensors")):
        parts = path.name.split(".")
        if (variant is None and len(parts) == 2) or (len(parts) == 3 and parts[1] == variant):
            files.append(path)
    return files


def held_shapes(files: Iterable[Path]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        shapes.update(safetensors_shapes(path))
        if len(shapes) > MAX_TENSORS:
            raise ModelError(f"{path.parent} holds more than {MAX_TENSORS:,} tensors. {DAMAGED}")
    return shapes


def compare_tensors(
    expected: dict[str, tuple[int, ...]], held: dict[str, tuple[int, ...]], where: str
) -> None:
    """ModelError naming the tensors the config describes that the weights lack, or hold
    with another shape (extra tensors are ignored, as the libraries do)."""
    missing = sorted(k for k in expected if k not in held)
    if missing:
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        raise ModelError(
            f"{where}: the weights lack {len(missing)} of the {len(expected)} tensors its "
            f"config describes ({shown}); the copy is incomplete or belongs to another "
            f"model. {DAMAGED}"
        )
    for name, shape in expected.items():
        if held[name] != shape:
            raise ModelError(
                f"{where}: the config describes {name} as {shape} but the weights hold "
                f"{held[name]}; config and weights come from different models. {DAMAGED}"
            )


# -- config against weights --------------------------------------------------------------
COMPONENT_BOUNDS = {"unet": UNET_BOUNDS, "vae": VAE_BOUNDS, "text_encoder": TEXT_BOUNDS}


def described_shapes(component: str, cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The tensors (name -> shape) the component's config describes, from a model built
    on the meta device: nothing is allocated, and the names are the libraries' own."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        if component == "unet":
            from diffusers import UNet2DConditionModel

            model = UNet2DConditionModel.from_config(cfg)
        elif component == "vae":
            from diffusers import AutoencoderKL

            model = AutoencoderKL.from_config(cfg)
        else:
            from transformers import CLIPTextConfig, CLIPTextModel

            model = CLIPTextModel(CLIPTextConfig.from_dict(cfg))
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def check_component_weights(folder: Path, component: str, variant: str | None) -> None:
    """A component's declared sizes within bounds, then its safetensors weights holding
    every tensor its config describes with the described shape (ModelError otherwise)."""
    where = f"{folder}/{component}"
    cfg = read_model_json(folder / component / "config.json")
    check_config_bounds(cfg, COMPONENT_BOUNDS[component], f"{where}/config.json")
    files = weight_files(folder / component, variant)
    if not files:  # pickle weights (allowed by the caller) cannot be read without running them
        return
    try:
        expected = described_shapes(component, cfg)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - the library's refusal of the config, by name
        what = f"{where}/config.json does not describe a model"
        raise ModelError(f"{what}: {exc}. {DAMAGED}") from exc
    compare_tensors(expected, held_shapes(files), where)
