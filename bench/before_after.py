"""Wall-clock of two engine trees on the tiny model, interleaved in one run (CPU).

    git archive <before-commit> | tar -x -C /tmp/editedid-before
    python bench/before_after.py --before /tmp/editedid-before [--repeats 3]

Each measurement is a fresh subprocess whose `sys.path` starts with one tree (this one or
--before), so both engines run with the same interpreter, packages, machine and load,
alternating before / after / before / after ...; the table keeps each tree's fastest
repeat (the least disturbed by other jobs on a shared machine). One restore = the
element-mask pre-pass + restore_faces (fresh inversion cache) on the tiny random SD model,
32 px crops, 10 null-text iterations with early stop off, 1 thread. On a CPU the tiny
UNet is cheap and Python overhead weighs more than on a GPU: read the ratio of UNet
samples and the seconds together.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from engine.models.tiny import build_tiny_sd
from engine.models.loading import load_sd_model
from engine.diffusion.latents import UNetStats
from engine.diffusion.restore import InversionCache, element_attention_maps, restore_faces
from engine.params import EditedIDParams
sys.path.insert(0, str(Path.cwd() / "bench"))
from engine_cost import make_pairs
faces, size = int(sys.argv[1]), int(sys.argv[2])
folder = build_tiny_sd(Path(tempfile.mkdtemp()) / "tiny")
model = load_sd_model(folder, device="cpu")
params = EditedIDParams(nulltext_iters=10, nulltext_early_stop=0.0)
pairs = make_pairs(faces, size)
restore_faces(model, pairs[:1], params.replace(nulltext_iters=1), cache=InversionCache())  # warm
start = time.perf_counter()
element_attention_maps(model, [p.edited for p in pairs], params)
middle = time.perf_counter()
result = restore_faces(model, pairs, params, cache=InversionCache())
end = time.perf_counter()
s = result.stats
print(json.dumps({"prepass": middle - start, "restore": end - middle, "total": end - start,
                  "timings": result.timings, "fwd": s.forward_samples, "bwd": s.backward_samples,
                  "calls": s.forward_calls}))
"""


def measure(tree: Path, faces: int, size: int) -> dict:
    env = {"PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(faces), str(size)],
        cwd=tree, env=env, capture_output=True, text=True, check=True, timeout=1200,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="the BEFORE engine tree")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args(argv)
    trees = {"before": args.before.resolve(), "after": HERE}
    best: dict[tuple[str, int], dict] = {}
    for faces in args.faces:
        for _ in range(args.repeats):
            for name, tree in trees.items():
                r = measure(tree, faces, args.size)
                key = (name, faces)
                if key not in best or r["total"] < best[key]["total"]:
                    best[key] = r
    head = "| tree | faces | UNet fwd | UNet bwd | calls | pre-pass s | inversion s | null-text s"
    print(head + " | entangle+decode s | total s | s/face |")
    print("|" + "---|" * 11)
    for (name, faces), r in best.items():
        t = r["timings"]
        print(
            f"| {name} | {faces} | {r['fwd']} | {r['bwd']} | {r['calls']} | {r['prepass']:.2f} | "
            f"{t['inversion']:.2f} | {t['nulltext']:.2f} | "
            f"{t['entanglement'] + t['decode']:.2f} | {r['total']:.2f} | {r['total'] / faces:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
