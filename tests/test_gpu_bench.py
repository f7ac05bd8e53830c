"""The GPU acceptance run cannot rot: its Python part runs here on the CPU (tiny model).

bench/gpu_bench.sh is meant to be run once on a GPU machine with no network; these
checks keep its pieces working between such runs: the dry run's table, the full-size
model builder (on the meta device) and an engine import chain free of the packages the
GPU machine lacks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")


def test_dry_run_writes_the_table(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "bench/gpu_acceptance.py", "--dry-run", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (out / "results.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    head, body = rows[0], rows[1:]
    assert "UNet fwd/face" in head and "peak GB" in head and "null-text s" in head
    assert [r.split("|")[1].strip() for r in body] == [
        "EditedID (6 steps, hybrid)",
        "EditedID (6 steps, hybrid)",
        "Null-text + P2P-style (8 DDIM steps, this engine, no alignment)",
    ]
    assert [r.split("|")[2].strip() for r in body] == ["1", "2", "1"]
    # EditedID: 6 steps; the baseline's 8 steps cost more UNet samples per face
    fwd = [float(r.split("|")[3]) for r in body]
    assert fwd[0] > 0 and fwd[2] > fwd[0]
    assert "1 face(s): checks passed" in text and "2 face(s): checks passed" in text
    assert "engine import chain imports of" in text
    data = json.loads((out / "results.json").read_text())
    assert len(data["rows"]) == 3 and all(r["wall"] > 0 for r in data["rows"])


def test_engine_import_chain_needs_no_gui_or_face_packages():
    code = (
        "import sys; sys.path.insert(0, 'bench')\n"
        "import engine_cost, engine.diffusion.restore, engine.models.loading, engine.params\n"
        "from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel\n"
        "from transformers import CLIPTextModel, CLIPTokenizer\n"
        "bad = ('dlib', 'PySide6', 'insightface', 'onnxruntime', 'matplotlib')\n"
        "print(sorted(m for m in bad if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_full_size_builder_on_meta():
    sys.path.insert(0, str(ROOT / "bench"))
    import torch
    from engine_cost import random_sd14_model

    model = random_sd14_model("meta", torch.float16)
    places = {(p.device.type, p.dtype) for p in model.unet.parameters()}
    assert places == {("meta", torch.float16)}
    millions = sum(p.numel() for p in model.unet.parameters()) / 1e6
    assert 850 < millions < 870  # SD 1.x UNet: 859.5M
    assert model.tokenizer("a photo of a face").input_ids[:3] == [49406, 320, 1125]


def test_scripts_parse_and_install_wheels_offline():
    for script in ("bench/gpu_bench.sh", "bench/fetch_wheels.sh"):
        subprocess.run(["bash", "-n", script], cwd=ROOT, check=True)
    text = (ROOT / "bench/gpu_bench.sh").read_text()
    assert "--no-index --no-deps" in text and "--target" in text
    assert "gpu_acceptance.py" in text and "tests/test_gpu.py" in text
