"""`EditedID --self-test`: the first thing support asks a user to run.

Checks, without a window and without the network, that the installed app (a PyInstaller
bundle or a source checkout) is complete and works end to end:

- every module of `engine` and `editedid_desktop` imports;
- versions of Python, PyTorch (CUDA build, GPU), diffusers, transformers, PySide6,
  onnxruntime (execution providers), insightface and dlib;
- the shipped resources (SD 1.x configs, CLIP tokenizer, icons) are present and load;
- a tiny random SD 1.x model is written to a temporary folder, loaded through
  `engine.models.loading.load_sd_model` exactly as a real model is, and a headless
  `engine.diffusion.restore.restore_faces` runs on small synthetic crops;
- the offline dlib face detector loads its models and runs on a photo;
- a camera RAW (a DNG made in memory) and a HEIC round trip through the engine's opener
  (LibRaw and libheif are there and work: `selftest_formats`).
- a small layered PSD is written by the engine and read back with psd-tools
  (`selftest_psd`).

`run_self_test(report=print)` returns 0 when every check passes, 1 otherwise, and
reports one readable line per check with its time.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pkgutil
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ReportFn = Callable[[str], object]

CHECKS = (
    "python",
    "modules",
    "torch",
    "libraries",
    "resources",
    "tiny model",
    "restore",
    "faces (dlib)",
    "photo formats",
    "layered PSD",
)

PACKAGES = ("engine", "editedid_desktop")

# Modules of PACKAGES that are entry points or may legitimately be absent.
_SKIP_MODULES = frozenset({"editedid_desktop.__main__", "engine.__main__"})

SELF_TEST_SIZE = 32  # crop size: 16x16 latents with the tiny VAE, a few seconds on a CPU


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


class _Skip(Exception):
    """A check that could not run here but is not a failure (e.g. no sample photo)."""


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """No hub call may happen during the self-test, whatever the user's environment says."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")
    saved = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ[k] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _version(module_name: str) -> str:
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        raise RuntimeError(f"{module_name} does not import: {exc}") from exc
    return str(getattr(module, "__version__", getattr(module, "DLIB_VERSION", "?")))


# ---------------------------------------------------------------------------------------
# The checks; each returns a one-line detail or raises.
# ---------------------------------------------------------------------------------------
def check_python(state: dict) -> str:
    frozen = "PyInstaller bundle" if getattr(sys, "frozen", False) else "source"
    return (
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()} "
        f"({frozen}; {Path(sys.executable).name})"
    )


def all_module_names() -> list[str]:
    """Every module of engine and editedid_desktop (works in a PyInstaller bundle too)."""
    names = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names.append(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if info.name not in _SKIP_MODULES:
                names.append(info.name)
    return sorted(set(names))


def check_modules(state: dict) -> str:
    names = all_module_names()
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - collected, reported together
            failed.append(f"{name} ({type(exc).__name__}: {exc})")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(names)} modules fail: " + "; ".join(failed))
    counts = {p: sum(1 for n in names if n == p or n.startswith(p + ".")) for p in PACKAGES}
    if min(counts.values()) < 2:
        raise RuntimeError(f"too few modules found ({counts}); the bundle is incomplete")
    return f"{len(names)} modules import (" + ", ".join(f"{p} {n}" for p, n in counts.items()) + ")"


def check_torch(state: dict) -> str:
    import torch

    built = torch.version.cuda
    text = f"torch {torch.__version__}, " + (f"CUDA {built} build" if built else "CPU-only build")
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        major, minor = torch.cuda.get_device_capability(index)
        total = torch.cuda.get_device_properties(index).total_memory / 2**30
        text += f"; GPU: {name} (sm_{major}{minor}, {total:.1f} GiB)"
        arch = f"sm_{major}{minor}"
        supported = torch.cuda.get_arch_list()
        if (
            supported
            and arch not in supported
            and not any(a.startswith("compute_") for a in supported)
        ):
            raise RuntimeError(
                f"{text}, but this build supports only {', '.join(supported)}: install the "
                "EditedID variant for this GPU (cu126 for GTX 9xx/10xx, cu128 for RTX 50xx)"
            )
        torch.ones(4, device="cuda").sum().item()  # a kernel actually runs
    elif built:
        text += "; CUDA not available (no NVIDIA GPU or driver): runs on the CPU"
    else:
        text += "; runs on the CPU"
    state["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    return text


def check_libraries(state: dict) -> str:
    parts = [f"{m} {_version(m)}" for m in ("diffusers", "transformers", "numpy", "cv2")]
    import PySide6

    parts.append(f"PySide6 {PySide6.__version__}")
    import onnxruntime

    providers = ",".join(
        p.replace("ExecutionProvider", "") for p in onnxruntime.get_available_providers()
    )
    parts.append(f"onnxruntime {onnxruntime.__version__} [{providers}]")
    import insightface
    import insightface.app  # noqa: F401 - the part engine.faces.detection uses

    parts.append(f"insightface {insightface.__version__}")
    import dlib

    parts.append(f"dlib {dlib.__version__}")
    return ", ".join(parts)


def check_resources(state: dict) -> str:
    from engine.resources import resources_dir, sd15_config_dir

    root = resources_dir()
    config = sd15_config_dir()
    needed = [
        config / "model_index.json",
        config / "unet" / "config.json",
        config / "vae" / "config.json",
        config / "text_encoder" / "config.json",
        config / "scheduler" / "scheduler_config.json",
        config / "tokenizer" / "vocab.json",
        config / "tokenizer" / "merges.txt",
        root / "icons" / "editedid.png",
    ]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise RuntimeError(f"missing in {root}: {', '.join(missing)}")
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(config / "tokenizer"))
    ids = tokenizer("a photo of a face with glasses").input_ids
    if len(ids) != 9 or tokenizer.model_max_length != 77:
        raise RuntimeError(f"the CLIP tokenizer in {config / 'tokenizer'} looks wrong: {ids}")
    return f"SD 1.x configs, CLIP tokenizer and icons in {root}"


def check_tiny_model(state: dict) -> str:
    from engine.models.loading import load_sd_model
    from engine.models.tiny import build_tiny_sd

    folder = build_tiny_sd(Path(state["tmp"]) / "tiny-sd", seed=0)
    model = load_sd_model(folder, device=state.get("device", "cpu"))
    state["model"] = model
    return f"built and loaded on {model.device} ({str(model.dtype).replace('torch.', '')})"


def synthetic_pair(size: int = SELF_TEST_SIZE):
    """A face-like original and an 'edited' crop with dark glasses, with their masks."""
    import numpy as np

    from engine.diffusion.restore import FacePair

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    skin = np.stack([0.85 - 0.2 * yy, 0.65 - 0.15 * yy, 0.55 - 0.1 * xx], axis=-1)
    face = ((xx - 0.5) / 0.3) ** 2 + ((yy - 0.5) / 0.4) ** 2 <= 1.0
    background = np.stack([0.2 + 0.3 * xx, 0.3 + 0.2 * yy, 0.6 * np.ones_like(xx)], axis=-1)
    original = np.where(face[..., None], skin, background)
    for cx in (0.38, 0.62):  # eyes
        eye = ((xx - cx) / 0.06) ** 2 + ((yy - 0.42) / 0.03) ** 2 <= 1.0
        original[eye] = (0.1, 0.1, 0.1)
    edited = original.copy()
    band = (yy > 0.35) & (yy < 0.5) & (xx > 0.15) & (xx < 0.85)
    edited[band] = (0.05, 0.05, 0.08)  # "glasses"
    to8 = lambda a: (np.clip(a, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    return FacePair(to8(original), to8(edited), to8(face * 1.0), to8(band * 1.0), name="synthetic")


def check_restore(state: dict) -> str:
    import numpy as np

    from engine.diffusion.restore import InversionCache, restore_faces
    from engine.params import EditedIDParams

    model = state.get("model")
    if model is None:
        raise RuntimeError("no model (the tiny model check failed)")
    pairs = [synthetic_pair(), synthetic_pair()]
    steps = []
    result = restore_faces(
        model,
        pairs,
        EditedIDParams(nulltext_iters=1),
        on_step=lambda stage, step, total, preview: steps.append(stage),
        cache=InversionCache(),
    )
    for face in result.faces:
        crop = face.restored
        if crop.shape != (SELF_TEST_SIZE, SELF_TEST_SIZE, 3) or crop.dtype != np.uint8:
            raise RuntimeError(f"restored crop has shape {crop.shape} and dtype {crop.dtype}")
    stages = sorted(set(steps))
    if stages != ["entanglement", "inversion", "nulltext"]:
        raise RuntimeError(f"stages reported: {stages}")
    return (
        f"{len(pairs)} faces {SELF_TEST_SIZE}x{SELF_TEST_SIZE}, {len(steps)} steps, "
        f"{result.stats.forward_calls} UNet calls"
    )


def sample_photo() -> Path | None:
    """insightface's t1.jpg (six people), shipped in the bundle and in the pip package."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "data" / "images" / "t1.jpg"
    return path if path.is_file() else None


def check_faces(state: dict) -> str:
    import numpy as np

    from engine.faces.detection import DlibAnalyzer, dlib_models_dir
    from engine.io.images import read_rgb

    analyzer = DlibAnalyzer(with_embeddings=True)
    photo = sample_photo()
    if photo is None:
        faces = analyzer.detect(np.zeros((64, 64, 3), np.uint8))
        return f"models load from {dlib_models_dir()}; no sample photo, ran on a blank image"
    image = read_rgb(photo)  # our decoders only, like every user file
    faces = analyzer.detect(image)
    if not faces:
        raise RuntimeError(f"no face found in {photo}")
    if faces[0].embedding is None or faces[0].embedding.shape != (128,):
        raise RuntimeError("the identity embedding is missing or has the wrong size")
    return f"{len(faces)} faces in {photo.name}, 128-d identity embeddings"


def check_photo_formats(state: dict) -> str:
    from .selftest_formats import check_heic, check_raw

    return f"{check_raw(Path(state['tmp']))}; {check_heic(Path(state['tmp']))}"


def check_layered_psd(state: dict) -> str:
    from .selftest_psd import check_psd

    return check_psd(state)


_CHECK_FNS: dict[str, Callable[[dict], str]] = {
    "python": check_python,
    "modules": check_modules,
    "torch": check_torch,
    "libraries": check_libraries,
    "resources": check_resources,
    "tiny model": check_tiny_model,
    "restore": check_restore,
    "faces (dlib)": check_faces,
    "photo formats": check_photo_formats,
    "layered PSD": check_layered_psd,
}


def _app_version() -> str:
    try:
        from editedid_desktop import __version__

        return __version__
    except Exception:  # noqa: BLE001
        return "?"


def run_checks(report: ReportFn = print, *, device: str | None = None) -> list[CheckResult]:
    """Run every check in order and report each; never raises."""
    results: list[CheckResult] = []
    with _offline(), tempfile.TemporaryDirectory(prefix="editedid-selftest-") as tmp:
        state: dict = {"tmp": tmp}
        for name in CHECKS:
            start = time.perf_counter()
            try:
                detail = _CHECK_FNS[name](state)
                ok = True
            except _Skip as exc:
                detail, ok = f"skipped: {exc}", True
            except Exception as exc:  # noqa: BLE001 - a failed check is a report line
                ok = False
                tb = traceback.extract_tb(exc.__traceback__)
                where = f" [{Path(tb[-1].filename).name}:{tb[-1].lineno}]" if tb else ""
                detail = f"{type(exc).__name__}: {exc}{where}"
            if name == "torch" and device:
                state["device"] = device
            seconds = time.perf_counter() - start
            result = CheckResult(name, ok, detail, seconds)
            results.append(result)
            report(f"  {'PASS' if ok else 'FAIL'}  {name:<13} {seconds:6.2f} s  {detail}")
        state.pop("model", None)
    return results


def run_self_test(report: ReportFn = print, *, device: str | None = None) -> int:
    """Run the self-test, report a readable PASS/FAIL list; 0 when all pass, else 1.

    device: None picks the GPU when CUDA works (as the app does), or "cpu" / "cuda".
    """
    start = time.perf_counter()
    report(f"EditedID {_app_version()} self-test")
    results = run_checks(report, device=device)
    failed = [r.name for r in results if not r.ok]
    total = time.perf_counter() - start
    if failed:
        report(
            f"RESULT: FAIL ({len(failed)} of {len(results)} checks failed: {', '.join(failed)}) "
            f"in {total:.1f} s. Send this report to support."
        )
        return 1
    report(f"RESULT: PASS ({len(results)} of {len(results)} checks) in {total:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    device = None
    if "--device" in args:
        device = args[args.index("--device") + 1]
    return run_self_test(device=device)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
