#!/usr/bin/env bash
# Lowest-supported-versions check: install the LOWEST versions pyproject.toml allows for
# the model stack into a throwaway venv and run a smoke restore on the CPU.
#
#   bash packaging/check_min_versions.sh                 # venv in /tmp/editedid-minver
#   EDITEDID_MINVER_VENV=/some/dir bash packaging/check_min_versions.sh
#   EDITEDID_MINVER_KEEP=1 ...     # reuse an existing venv (skip the re-install)
#   PYTHON=python3.11 ...          # the interpreter the venv is made from
#   EDITEDID_MINVER_PINNED="accelerate" ...   # pin only these; newest of the rest
#
# The floors are read from the `dependencies` list of pyproject.toml (tomllib), never
# copied here: torch, diffusers, transformers, accelerate, huggingface_hub, safetensors,
# numpy and pillow are installed as `name==floor`. Everything else (tokenizers, regex,
# requests, ...) is what pip resolves for those pins. The project itself is not installed:
# the repository goes on PYTHONPATH, so its other dependencies (Qt, insightface, ...) are
# not needed. The smoke builds a tiny random SD 1.x model (engine.models.tiny), loads it through
# engine.models.loading.load_sd_model on the CPU and runs engine.diffusion.restore.restore_faces on one
# 64x64 synthetic face pair. The network is used only by pip; the smoke runs offline.
#
# Old torch wheels on PyPI for Linux x86-64 are CUDA builds: `import torch` fails without
# the nvidia-* libraries (ValueError: libcublas.so.*[0-9] not found), so they are
# installed too (about 3 GB download; the check still runs on the CPU).
#
# Exit status 0 and a final "PASS" line when every check passed; 1 (FAIL) otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EDITEDID_MINVER_VENV:-/tmp/editedid-minver}"
PYTHON="${PYTHON:-python3}"
KEEP="${EDITEDID_MINVER_KEEP:-0}"
# Packages pinned to their floor (all must have a `>=` floor in pyproject.toml); the
# others get what pip resolves. EDITEDID_MINVER_PINNED="accelerate" checks one floor
# against the newest everything else.
STACK="torch diffusers transformers accelerate huggingface_hub safetensors numpy pillow"
PINNED="${EDITEDID_MINVER_PINNED:-$STACK}"

start=$(date +%s)
echo "== check_min_versions: $(date -u +%Y-%m-%dT%H:%M:%SZ), repo $ROOT, venv $VENV"

PINS="$("$PYTHON" - "$ROOT/pyproject.toml" "$PINNED" $STACK <<'EOF'
import re
import sys
import tomllib

path, pinned, names = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
with open(path, "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


floors = {}
for dep in deps:
    m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$", dep)
    spec = m.group(3).split(";")[0]
    low = [s.strip()[2:].strip() for s in spec.split(",") if s.strip().startswith(">=")]
    if low:
        floors[norm(m.group(1))] = low[0]
missing = [n for n in names + pinned if norm(n) not in floors]
if missing:
    sys.exit(f"pyproject.toml has no '>=' floor for: {', '.join(missing)}")
pinned = {norm(n) for n in pinned}
print(" ".join(f"{n}{'==' if norm(n) in pinned else '>='}{floors[norm(n)]}" for n in names))
EOF
)"
echo "== requirements from pyproject.toml's floors: $PINS"

if [[ "$KEEP" == 1 && -x "$VENV/bin/python" ]]; then
    echo "== reusing $VENV (EDITEDID_MINVER_KEEP=1)"
else
    if [[ -e "$VENV" && ! -e "$VENV/.editedid-minver" ]]; then
        echo "$VENV exists and was not made by this script: not deleting it" >&2
        exit 2
    fi
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    touch "$VENV/.editedid-minver"
    # shellcheck disable=SC2086  # PINS is a list of requirement words
    "$VENV/bin/python" -m pip install --no-input --progress-bar off $PINS
    echo "== install: $(($(date +%s) - start)) s"
fi
echo "== pip check"
"$VENV/bin/python" -m pip check

smoke_start=$(date +%s)
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
status=0
(
    cd "$WORK"
    # Offline: the smoke must never reach the hub (engine.privacy sets the same defaults).
    env PYTHONPATH="$ROOT" HF_HOME="$WORK/hf" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
        HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1 \
        "$VENV/bin/python" - "$WORK" $PINS <<'EOF'
import importlib.metadata as md
import platform
import sys
import time
from pathlib import Path

import numpy as np

work, pins = Path(sys.argv[1]), sys.argv[2:]
print(f"python {platform.python_version()} ({sys.executable})")
ok = True
for pin in pins:
    if "==" not in pin:
        continue
    name, want = pin.split("==")
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = "missing"
    same = have.split("+")[0] in (want, want + ".0", want + ".0.0")
    print(f"{name:16} {have:12} (floor {want}){'' if same else '  <-- NOT THE FLOOR'}")
    ok &= same
shown = {p.split("==")[0] for p in pins if "==" in p}
for name in ("torch", "diffusers", "transformers", "accelerate", "huggingface_hub",
             "safetensors", "numpy", "tokenizers", "pillow", "regex", "requests", "triton"):
    if name in shown:
        continue
    try:
        print(f"{name:16} {md.version(name)}")
    except md.PackageNotFoundError:
        pass

import torch  # noqa: E402

print(f"torch build: cuda {torch.version.cuda}, cuda available {torch.cuda.is_available()}")
torch.set_num_threads(max(1, min(4, torch.get_num_threads())))

from diffusers.utils import is_accelerate_available as diffusers_sees_accelerate  # noqa: E402
from transformers.utils import is_accelerate_available as transformers_sees_accelerate  # noqa: E402

print(f"accelerate seen by diffusers: {diffusers_sees_accelerate()}, "
      f"by transformers: {transformers_sees_accelerate()}")
ok &= bool(diffusers_sees_accelerate()) and bool(transformers_sees_accelerate())

from engine.models.loading import load_sd_model  # noqa: E402
from engine.params import EditedIDParams  # noqa: E402
from engine.diffusion.restore import FacePair, restore_faces  # noqa: E402
from engine.models.tiny import build_tiny_sd  # noqa: E402

t = time.perf_counter()
folder = build_tiny_sd(work / "tiny-sd")
model = load_sd_model(folder, device="cpu")
print(f"tiny model built and loaded: {time.perf_counter() - t:.1f} s")
dtypes = {p.dtype for m in (model.unet, model.vae, model.text_encoder) for p in m.parameters()}
print(f"weights dtypes: {sorted(str(d) for d in dtypes)}")
ok &= dtypes == {torch.float32}

size = 64
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:size, 0:size]
base = np.stack([xx * 3, yy * 3, (xx + yy) * 2], axis=-1).astype(np.float64)
original = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
edited = np.clip(base[:, ::-1] + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
inside = ((xx - size / 2) / (size * 0.3)) ** 2 + ((yy - size / 2) / (size * 0.4)) ** 2 <= 1
face = (inside * 255).astype(np.uint8)
element = np.zeros((size, size), np.uint8)
element[int(size * 0.35) : int(size * 0.5), int(size * 0.15) : int(size * 0.85)] = 255
for m in (face, element):
    assert 0 < int((m > 0).sum()) < m.size, "masks must be neither empty nor full"

params = EditedIDParams(steps=4, dpm_range=(2, 4), nulltext_iters=2, resolution=size)
t = time.perf_counter()
result = restore_faces(model, [FacePair(original, edited, face, element)], params)
crop = result.faces[0].restored
print(f"restore_faces: {time.perf_counter() - t:.1f} s, crop {crop.shape} {crop.dtype}, "
      f"range {int(crop.min())}..{int(crop.max())}")
good = (
    isinstance(crop, np.ndarray)
    and crop.dtype == np.uint8
    and crop.shape == (size, size, 3)
    and bool(np.isfinite(crop.astype(np.float64)).all())
    and int(crop.max()) > int(crop.min())
)
print(f"restored crop checks: {'ok' if good else 'FAILED'}")
ok &= good
sys.exit(0 if ok else 1)
EOF
) || status=$?
echo "== smoke: $(($(date +%s) - smoke_start)) s, total: $(($(date +%s) - start)) s"
if [[ "$status" == 0 ]]; then
    echo "PASS: $PINS: the model loads and a face is restored"
else
    echo "FAIL (exit $status): see above"
    exit 1
fi
