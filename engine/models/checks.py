"""What a model's files must be before anything loads them: a diffusers folder's JSON
files read safely (size-capped, objects only) and checked to describe a Stable Diffusion
1.x text-to-image model (not XL, 2.x, v-prediction or inpainting; a usable noise
schedule), the format of each component's weights (safetensors or pickle, and the pickle
shards a weights index may name), and a single-file checkpoint's tensor names checked
for the SD 1.x layout. Only small JSON files and safetensors headers are read here;
engine.models.loading does the loading.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from engine.errors import ModelError
from engine.models.safety import (
    UNET_BOUNDS,
    check_config_bounds,
    check_folder_entries,
    read_model_json,
    safetensors_shapes,
)

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
SAFE_SUFFIXES = (".safetensors",)
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder")

MAX_TRAIN_TIMESTEPS = 100_000  # SD 1.x uses 1000


# -- folder ------------------------------------------------------------------------------
def read_json(path: Path) -> dict[str, Any]:
    """A model folder's JSON file, which must hold a JSON object; else ModelError naming it
    (read as untrusted input: engine.models.safety)."""
    if not path.exists():
        raise FileNotFoundError(path)
    return read_model_json(path)


def check_sd1_folder(folder: Path) -> dict[str, Any]:
    """Check from its JSON files that folder holds an SD 1.x diffusers model.

    Returns the unet config. Raises ModelError saying why not.
    """
    index_path = folder / "model_index.json"
    check_folder_entries(folder)
    if not index_path.is_file():
        hint = ""
        nested = sorted(p.parent for p in folder.glob("*/model_index.json"))
        if len(nested) == 1:
            hint = f" (one was found in {nested[0]}: point to that folder)"
        raise ModelError(
            f"{folder} is not a diffusers model folder: expected model_index.json in it{hint}. "
            "Point to the folder that contains unet/ vae/ text_encoder/ tokenizer/ and "
            "model_index.json, or give a single .safetensors checkpoint file."
        )
    index = read_json(index_path)
    class_name = str(index.get("_class_name", ""))
    if "text_encoder_2" in index or "XL" in class_name:
        raise ModelError(
            f"{folder} is a Stable Diffusion XL model ({class_name or 'has text_encoder_2'}); "
            "EditedID needs a Stable Diffusion 1.x model (e.g. CompVis/stable-diffusion-v1-4)."
        )
    missing = [c for c in COMPONENTS if c not in index or not (folder / c).is_dir()]
    if missing:
        raise ModelError(
            f"{folder} is incomplete: missing {', '.join(missing)} "
            "(a Stable Diffusion 1.x folder has unet/ vae/ text_encoder/ tokenizer/ scheduler/)."
        )
    unet_cfg_path = folder / "unet" / "config.json"
    if not unet_cfg_path.is_file():
        raise ModelError(f"{folder} is incomplete: unet/config.json is missing.")
    unet_cfg = read_json(unet_cfg_path)
    _check_sd1_configs(
        unet_cfg,
        _read_json_opt(folder / "scheduler" / "scheduler_config.json"),
        _read_json_opt(folder / "text_encoder" / "config.json"),
        where=str(folder),
    )
    return unet_cfg


def _read_json_opt(path: Path) -> dict[str, Any] | None:
    return read_json(path) if path.is_file() else None


def _check_sd1_configs(
    unet_cfg: dict[str, Any],
    sched_cfg: dict[str, Any] | None,
    text_cfg: dict[str, Any] | None,
    *,
    where: str,
) -> None:
    sd1 = "EditedID needs a Stable Diffusion 1.x model (e.g. CompVis/stable-diffusion-v1-4)"
    check_config_bounds(unet_cfg, UNET_BOUNDS, f"{where}/unet/config.json")
    if unet_cfg.get("addition_embed_type") == "text_time":
        raise ModelError(f"{where} is a Stable Diffusion XL model; {sd1}.")
    cross = unet_cfg.get("cross_attention_dim")
    if cross == 1024:
        raise ModelError(
            f"{where} is a Stable Diffusion 2.x model (cross_attention_dim 1024, OpenCLIP "
            f"text encoder); {sd1}."
        )
    if sched_cfg is not None:
        check_scheduler_config(sched_cfg, f"{where}/scheduler/scheduler_config.json")
    if sched_cfg and sched_cfg.get("prediction_type") == "v_prediction":
        raise ModelError(
            f"{where} is a v-prediction model (Stable Diffusion 2.x style, prediction_type "
            f"v_prediction); EditedID's inversion assumes epsilon prediction. {sd1}."
        )
    in_ch = unet_cfg.get("in_channels", 4)
    if in_ch != 4:
        kind = {9: "an inpainting model", 8: "an InstructPix2Pix-style model", 5: "a depth model"}
        raise ModelError(
            f"{where} is {kind.get(in_ch, 'not a text-to-image model')} (UNet in_channels "
            f"{in_ch}, expected 4); {sd1} text-to-image checkpoint, not an inpainting one."
        )
    if text_cfg is not None:
        hidden = text_cfg.get("hidden_size")
        if hidden is not None and cross is not None and hidden != cross:
            raise ModelError(
                f"{where}: the UNet's cross_attention_dim ({cross}) does not match the text "
                f"encoder's hidden_size ({hidden}); the components come from different models."
            )


def check_scheduler_config(cfg: dict[str, Any], where: str) -> None:
    """ModelError unless the numbers alpha-bar is computed from are usable."""
    n = cfg.get("num_train_timesteps", 1000)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_TRAIN_TIMESTEPS:
        raise ModelError(
            f"{where}: num_train_timesteps must be a whole number from 1 to "
            f"{MAX_TRAIN_TIMESTEPS} (SD 1.x uses 1000), got {n!r}. The model folder looks "
            "damaged."
        )
    for key in ("beta_start", "beta_end"):
        if key not in cfg:
            continue
        value = cfg[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not 0.0 < value < 1.0:
            raise ModelError(
                f"{where}: {key} must be a number between 0 and 1, got {value!r}. The model "
                "folder looks damaged."
            )


def weight_format(component_dir: Path) -> tuple[str, str | None]:
    """("safetensors" | "pickle" | "none", variant) of the weights in a component folder.

    variant is None when plain files exist (model.safetensors), else the variant of the
    files found (e.g. "fp16" for diffusion_pytorch_model.fp16.safetensors only).
    """
    stems: dict[str, list[str]] = {"safetensors": [], "pickle": []}
    for p in component_dir.iterdir():
        if not p.is_file():
            continue
        name = p.name.removesuffix(".index.json")
        if name.endswith(".safetensors"):
            stems["safetensors"].append(name.removesuffix(".safetensors"))
        elif name.endswith(PICKLE_SUFFIXES):
            stems["pickle"].append(name.rsplit(".", 1)[0])
    for fmt in ("safetensors", "pickle"):
        found = stems[fmt]
        if not found:
            continue
        if any("." not in s for s in found):
            return fmt, None
        return fmt, sorted(found)[0].rsplit(".", 1)[1]
    return "none", None


def _weight_indexes(component_dir: Path) -> list[Path]:
    """The shard index files of a component folder (`*.index.json`, `*.index.<variant>.json`)."""
    return sorted(
        p
        for p in component_dir.iterdir()
        if p.name.endswith(".json") and ".index." in p.name and not p.is_dir()
    )


def pickle_shards(component_dir: Path) -> list[tuple[Path, str]]:
    """(index file, shard) for every shard an index names that is not a .safetensors file.

    diffusers and transformers load the shards an index names whatever the index's own
    name says (a `*.safetensors.index.json` may name `.bin` shards), and a `.bin` shard
    is read with pickle. An index that is not a weights index, or names a file outside its
    folder, is refused here (ModelError).
    """
    found = []
    for index in _weight_indexes(component_dir):
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelError(
                f"Cannot read {index}: it has no weight_map (the shard file of each "
                "weight). The model folder looks damaged."
            )
        for shard in sorted({str(v) for v in weight_map.values()}):
            if not shard or shard in (".", "..") or "/" in shard or "\\" in shard:
                raise ModelError(
                    f"{index} names the shard {shard!r}, which is not a file in "
                    f"{component_dir}. The model folder looks damaged or tampered with."
                )
            if not shard.endswith(SAFE_SUFFIXES):
                found.append((index, shard))
    return found


def check_sd1_folder_configs_only(config: Path) -> None:
    unet_cfg = read_json(config / "unet" / "config.json")
    _check_sd1_configs(
        unet_cfg,
        _read_json_opt(config / "scheduler" / "scheduler_config.json"),
        _read_json_opt(config / "text_encoder" / "config.json"),
        where=str(config),
    )


# -- single file -------------------------------------------------------------------------
def single_file_keys(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the file's header, read with caps (engine.models.safety)."""
    return safetensors_shapes(path)


def check_sd1_single_file(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    sd1 = "EditedID needs a Stable Diffusion 1.x checkpoint"
    if any(k.startswith("conditioner.embedders.1.") for k in shapes):
        raise ModelError(f"{path} is a Stable Diffusion XL checkpoint; {sd1}.")
    if any(k.startswith("cond_stage_model.model.") for k in shapes):
        raise ModelError(
            f"{path} is a Stable Diffusion 2.x checkpoint (OpenCLIP text encoder); {sd1}."
        )
    conv_in = shapes.get("model.diffusion_model.input_blocks.0.0.weight")
    if conv_in is None:
        if any(k.startswith(("down_blocks.", "unet.", "lora")) for k in shapes) or any(
            "lora" in k for k in list(shapes)[:50]
        ):
            what = "a diffusers-format or LoRA/partial weights file"
        else:
            what = "not a full Stable Diffusion checkpoint (no UNet weights)"
        raise ModelError(
            f"{path} is {what}; a single-file model must be an original-format SD 1.x "
            "checkpoint with UNet, VAE and text encoder (model.diffusion_model.*, "
            "first_stage_model.*, cond_stage_model.*). For a diffusers folder give the folder."
        )
    if len(conv_in) == 4 and conv_in[1] != 4:
        raise ModelError(
            f"{path} is an inpainting or other non text-to-image checkpoint (UNet takes "
            f"{conv_in[1]} input channels, expected 4); {sd1} text-to-image checkpoint."
        )
    if not any(k.startswith("first_stage_model.") for k in shapes):
        raise ModelError(f"{path} has no VAE weights (first_stage_model.*); {sd1} with its VAE.")
    if "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight" not in shapes:
        raise ModelError(
            f"{path} has no CLIP text encoder (cond_stage_model.transformer.*); {sd1} "
            "with its text encoder."
        )
