"""Hostile model folders (issue 23): how long each takes to be refused, and the message.

    .venv/bin/python bench/hostile_models.py

Each case is a copy of a tiny SD folder with one thing changed; prints a Markdown table.
Before the checks of engine/models/safety.py: block_out_channels 100000 asked for 160 GB,
layers_per_block 1e6 built for 137 s (6.8 GB), a tokenizer linked to /dev/urandom read
6.4 GB, a 400 MB tokenizer.json was accepted, a header of a million tensors cost 30 s and
1.9 GB, half the UNet's tensors gave "Cannot copy out of meta tensor".
"""

import json
import os
import resource
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.errors import ModelError  # noqa: E402
from engine.models.loading import load_sd_model  # noqa: E402
from engine.models.tiny import build_tiny_sd  # noqa: E402


def case(name, change):
    folder = Path(name)
    shutil.copytree(base, folder)
    change(folder)
    start = time.perf_counter()
    try:
        load_sd_model(folder)
        out = "LOADED"
    except ModelError as error:
        out = str(error).replace(str(folder.resolve()), name)[:100].replace("|", "/")
    print(f"| {name} | {time.perf_counter() - start:.2f} s | {out} |")


def cfg(component, **changes):
    def change(folder):
        path = folder / component / "config.json"
        config = json.loads(path.read_text())
        config.update(changes)
        path.write_text(json.dumps(config))

    return change


def urandom(folder):
    tokenizer = folder / "tokenizer" / "tokenizer.json"
    tokenizer.unlink()
    os.symlink("/dev/urandom", tokenizer)


def big_tokenizer(folder):
    with open(folder / "tokenizer" / "tokenizer.json", "wb") as handle:
        handle.truncate(400 * 2**20)  # sparse


def million_tensors(folder):
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    entry = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
    raw = json.dumps({f"t{i}": entry for i in range(1_000_000)}).encode()
    weights.write_bytes(struct.pack("<Q", len(raw)) + raw)


def half_the_tensors(folder):
    from safetensors.torch import load_file, save_file

    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    names = sorted(tensors)
    save_file({name: tensors[name] for name in names[: len(names) // 2]}, weights)


def main() -> None:
    global base
    work = Path(tempfile.mkdtemp(prefix="hostile-models-"))
    os.chdir(work)
    base = build_tiny_sd(Path("base"))
    print("| case | time to refuse | message |")
    print("|---|---|---|")
    case("block_out_channels_100000", cfg("unet", block_out_channels=[100000, 64]))
    case("layers_per_block_1e6", cfg("unet", layers_per_block=1_000_000))
    case("tokenizer_to_dev_urandom", urandom)
    case("tokenizer_400MB", big_tokenizer)
    case("header_1M_entries", million_tensors)
    case("half_unet_tensors", half_the_tensors)
    print("peak RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "MiB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
