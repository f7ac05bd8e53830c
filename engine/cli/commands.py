"""editedid-cli: the engine on the command line.

  editedid-cli restore --original o.jpg --edited e.png --out r.png [--mode classic]
  editedid-cli restore-crop --original o.png --edited e.png --face-mask f.png \
      --element-mask m.png --element glasses --model PATH --out r.png
  editedid-cli batch --original-dir O --edited-dir E --out-dir R     (engine.cli.batch)
  editedid-cli eval FOLDER --out OUT                                 (engine.cli.eval)
  editedid-cli models download sd [--id CompVis/stable-diffusion-v1-4] [--fp16]
  editedid-cli models where
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from engine import __version__
from engine.cli.batch import add_batch_parser
from engine.cli.eval import add_eval_parser
from engine.cli.options import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_MODEL,
    EXIT_OK,
    add_location_options,
    add_model_options,
    add_param_options,
    add_restorer_options,
    params_from_args,
    restorer_from_args,
    run_command,
)
from engine.errors import InputError

# The exit codes and the parameter options live in engine.cli.options; these names are
# kept here for the tests and scripts that import them from the main command module.
__all__ = [
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_INPUT",
    "EXIT_MODEL",
    "EXIT_OK",
    "build_parser",
    "main",
    "params_from_args",
]


# Inside a step (a UNet or VAE call, engine.diffusion.progress), a line at most this often:
# a slow step still shows it moves, a fast one does not flood the terminal.
UNIT_LINE_S = 2.0


def _progress_printer(quiet: bool):
    last = [time.monotonic()]

    def on_step(stage: str, step: int, total: int, info=None) -> None:
        if quiet:
            return
        detail = info.describe() if hasattr(info, "describe") else ""
        now = time.monotonic()
        if detail and now - last[0] < UNIT_LINE_S:
            return
        last[0] = now
        print(f"  {stage:<13} {step}/{total}{detail}", file=sys.stderr, flush=True)

    return on_step


def _warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


@contextlib.contextmanager
def _output_folder(out: Path):
    """Create the output's missing folders (`restore --out new/dir/r.png` works, as
    `batch --out-dir` does) for the command run inside; when it fails or is refused, the
    folders made here are removed again if still empty, so a refused command leaves
    nothing behind."""
    from engine.io.export import OutputFolderError

    folder = Path(out).parent
    missing = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        pass  # a file where the folder should be: check_result_target says so
    except OSError as error:
        raise OutputFolderError(
            f"{folder}: cannot create the output folder ({error.strerror or error})."
        ) from error
    try:
        yield
    except BaseException:
        for made in missing:
            with contextlib.suppress(OSError):
                made.rmdir()
        raise


# --- restore-crop ---------------------------------------------------------------------
def cmd_restore_crop(args: argparse.Namespace) -> int:
    from engine.io.export import check_result_target, sidecar_inputs, write_with_sidecar
    from engine.io.files import read_hashed, remove_stale_temp_files
    from engine.io.images import read_mask, read_rgb, write_image_atomic
    from engine.photo.contract import CropJob

    params = params_from_args(args)
    inputs = {
        "original": Path(args.original),
        "edited": Path(args.edited),
        "face_mask": Path(args.face_mask),
        "element_mask": Path(args.element_mask),
    }
    out = Path(args.out)
    # output, sidecar and inputs are checked before the model is loaded
    with _output_folder(out):
        check_result_target(out, protected_paths=inputs, overwrite=args.overwrite, formats=None)
        hashes, arrays = {}, {}
        for name, path in inputs.items():
            arrays[name], hashes[name] = read_hashed(
                path, read_mask if "mask" in name else read_rgb
            )
        job = CropJob(
            arrays["original"], arrays["edited"], arrays["face_mask"], arrays["element_mask"],
            name=inputs["edited"].name,
        )  # fmt: skip
        del arrays
        remove_stale_temp_files(out.parent)
        started = time.perf_counter()
        restorer = restorer_from_args(args, "diffusion")
        loaded = time.perf_counter()
        if not args.quiet:
            model = restorer.model
            took = loaded - started
            print(
                f"Model {model.model_id} on {model.device} ({model.dtype}) in {took:.1f} s",
                file=sys.stderr,
            )
        restored = restorer.restore(
            [job], params, on_step=_progress_printer(args.quiet), on_message=_warn
        )
        sidecar = {
            "tool": "editedid-cli restore-crop",
            "version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "inputs": sidecar_inputs(inputs, hashes),
            "output": str(out.resolve()),
            "seconds": round(time.perf_counter() - loaded, 3),
            "diagnostics": restored.sidecar["engine"],
        }
        write_with_sidecar(
            out,
            lambda: write_image_atomic(out, restored.crops[0]),
            sidecar,
            protected_paths=inputs,
            overwrite=args.overwrite,
            formats=None,
        )
        print(out)
    return EXIT_OK


def _add_restore_crop_parser(subparsers) -> None:
    crop = subparsers.add_parser(
        "restore-crop",
        help="Restore one aligned face crop pair (same size, masks given).",
        description="EditedID on one aligned pair of face crops: the original face already "
        "warped into the edited face's frame, with a face mask and an element mask.",
    )
    crop.add_argument("--original", required=True, type=Path, help="Aligned original face crop.")
    crop.add_argument("--edited", required=True, type=Path, help="Edited face crop (same size).")
    crop.add_argument("--face-mask", required=True, type=Path, help="Face mask (white = face).")
    crop.add_argument(
        "--element-mask",
        required=True,
        type=Path,
        help="Element mask (white = edited element to keep).",
    )
    crop.add_argument("--out", required=True, type=Path, help="Output image (.png, .jpg, .tif).")
    crop.add_argument("--overwrite", action="store_true", help="Replace --out if it exists.")
    add_location_options(crop, carries_metadata=False)
    add_model_options(crop)  # the EditedID method on one pair
    crop.add_argument("--quiet", action="store_true", help="No progress output.")
    add_param_options(crop)
    crop.set_defaults(func=cmd_restore_crop)


# --- restore (a whole photo) ----------------------------------------------------------
FACES_HELP = (
    "Which faces to restore: 'changed' (default: the faces whose identity the edit changed; "
    "unchanged faces and detections that look like no face are left as edited), 'all' "
    "(every paired face), or face numbers such as 1,3. Faces are numbered left to right "
    "from 1, as the app's face panel and the sidecar show them."
)


def _parse_faces(text: str | None) -> list[int] | str | None:
    """--faces: None / "changed" / "all", or 1-based face numbers -> 0-based indices."""
    if not text or text.strip().lower() == "changed":
        return None
    if text.strip().lower() == "all":
        return "all"
    try:
        numbers = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError as error:
        raise InputError(
            f"--faces takes 'changed', 'all' or face numbers separated by commas, e.g. 1,3 "
            f"(got {text!r})."
        ) from error
    if any(n < 1 for n in numbers):
        raise InputError(f"--faces: faces are numbered from 1 (left to right), got {text!r}.")
    return [n - 1 for n in numbers]


def cmd_restore(args: argparse.Namespace) -> int:
    from engine.io.export import check_output_folder, check_result_target
    from engine.io.files import remove_stale_temp_files
    from engine.io.images import open_image
    from engine.photo.pipeline import restore_photo_files

    # parameters, output, sidecar and inputs are checked before the model is loaded
    params = params_from_args(args)
    faces = _parse_faces(args.faces)
    inputs = {"original": Path(args.original), "edited": Path(args.edited)}
    with _output_folder(Path(args.out)):
        check_result_target(Path(args.out), protected_paths=inputs, overwrite=args.overwrite)
        # read-only or full: said now, not after minutes of diffusion
        check_output_folder(Path(args.out).parent)
        for path in inputs.values():
            with open_image(path):  # the header: missing, unreadable or not an image
                pass
        remove_stale_temp_files(Path(args.out).parent)
        restorer = restorer_from_args(args)
        result = restore_photo_files(
            args.original,
            args.edited,
            args.out,
            params,
            restorer=restorer,
            backend=args.face_backend,
            faces=faces,
            on_step=_progress_printer(args.quiet),
            overwrite=args.overwrite,
            strip_location=args.strip_location,
        )
        if not args.quiet:
            for face in result.faces:
                before = f"{face.id_before.value:.3f}" if face.id_before else "n/a"
                after = f"{face.id_after.value:.3f}" if face.id_after else "n/a"
                partner = "none" if face.original_index is None else face.original_index + 1
                print(
                    f"face {face.index + 1}: paired with original face {partner}; "
                    f"identity ({result.backend}) before {before} -> after {after}",
                    file=sys.stderr,
                )
            for index, why in getattr(result, "left_alone", []):
                print(f"face {index + 1}: left as edited ({why})", file=sys.stderr)
            for warning in result.warnings:
                _warn(warning)
        print(args.out)
    return EXIT_OK


def _add_restore_parser(subparsers) -> None:
    photo = subparsers.add_parser(
        "restore",
        help="Restore every paired face of a whole photo.",
        description="Detect and pair the faces of the original and the edited photo, restore "
        "each selected face's identity (all faces in one batch) and paste them back. Pixels "
        "outside the faces stay exactly as edited. A sidecar JSON is written next to --out.",
    )
    photo.add_argument("--original", required=True, type=Path, help="The original photo.")
    photo.add_argument("--edited", required=True, type=Path, help="The AI-edited photo.")
    photo.add_argument(
        "--out",
        required=True,
        type=Path,
        help="Output image (.png, .jpg, .tif), or .psd for a layered Photoshop document "
        "(.psb past 30000 px).",
    )
    photo.add_argument("--overwrite", action="store_true", help="Replace --out if it exists.")
    add_location_options(photo)
    photo.add_argument(
        "--faces",
        default=None,
        help=FACES_HELP,
    )
    photo.add_argument(
        "--face-backend",
        default="auto",
        choices=["auto", "dlib", "insightface"],
        help="Face detector/recogniser (auto: insightface if installed, else dlib).",
    )
    add_restorer_options(photo)
    photo.add_argument("--quiet", action="store_true", help="No progress output.")
    add_param_options(photo)
    photo.set_defaults(func=cmd_restore)


# --- models ---------------------------------------------------------------------------
def cmd_models_download(args: argparse.Namespace) -> int:
    from engine.models.loading import DEFAULT_SD_MODEL, SD15_DOWNLOAD_SIZE, download_sd_model

    last = [0.0]

    def progress(done: int, total: int, label: str) -> None:
        now = time.monotonic()
        if now - last[0] > 0.5 or (total and done >= total):
            last[0] = now
            pct = f"{100 * done / total:5.1f}%" if total else ""
            print(f"  {label} {done / 1e6:8.1f} MB {pct}", file=sys.stderr, flush=True)

    if args.what == "faces":
        from engine.faces.detection import download_face_models

        print("Downloading insightface buffalo_l (about 280 MB) ...", file=sys.stderr)
        print(download_face_models(models_dir=args.models_dir, progress=progress))
        return EXIT_OK
    hub_id = args.id or DEFAULT_SD_MODEL
    print(f"Downloading {hub_id} ({SD15_DOWNLOAD_SIZE}) ...", file=sys.stderr)
    path = download_sd_model(
        hub_id, models_dir=args.models_dir, progress=progress, variant="fp16" if args.fp16 else None
    )
    print(path)
    return EXIT_OK


def cmd_models_where(args: argparse.Namespace) -> int:
    from engine.models.loading import default_models_dir

    print(default_models_dir())
    return EXIT_OK


def _add_models_parser(subparsers) -> None:
    from engine.models.loading import DEFAULT_SD_MODEL

    models = subparsers.add_parser("models", help="Download or locate models.")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    download = models_sub.add_parser("download", help="Download a model (needs internet).")
    download.add_argument(
        "what",
        choices=["sd", "faces"],
        help="sd: Stable Diffusion 1.x; faces: insightface buffalo_l (detection + ArcFace).",
    )
    download.add_argument("--id", default=None, help=f"Hub id (default {DEFAULT_SD_MODEL}).")
    download.add_argument("--fp16", action="store_true", help="Half-size fp16 weights.")
    download.add_argument("--models-dir", type=Path, default=None, help="Target models folder.")
    download.set_defaults(func=cmd_models_download)
    where = models_sub.add_parser("where", help="Print the models folder.")
    where.set_defaults(func=cmd_models_where)


# --- parser ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="editedid-cli",
        description="Restore the original identity of faces changed by AI image editors "
        "(EditedID on Stable Diffusion 1.x). Runs locally; nothing leaves this machine.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_restore_crop_parser(sub)
    _add_restore_parser(sub)
    add_batch_parser(sub)
    add_eval_parser(sub)
    _add_models_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
