"""editedid-cli: the engine on the command line.

  editedid-cli restore-crop --original o.png --edited e.png --face-mask f.png \
      --element-mask m.png --element glasses --model PATH --out r.png
  editedid-cli models download sd [--id CompVis/stable-diffusion-v1-4] [--fp16]
  editedid-cli models where
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import typing
from datetime import UTC, datetime
from pathlib import Path

from engine import __version__
from engine.errors import Cancelled, EditedIDError, InputError, ModelError
from engine.params import PARAM_HELP, EditedIDParams

EXIT_OK, EXIT_INPUT, EXIT_MODEL, EXIT_CANCELLED = 0, 2, 3, 130


# --- parameters as options ----------------------------------------------------------
def add_param_options(parser: argparse.ArgumentParser) -> None:
    """One option per EditedIDParams field, defaults from the dataclass (the paper's)."""
    group = parser.add_argument_group("EditedID parameters (defaults are the paper's)")
    defaults = EditedIDParams()
    hints = typing.get_type_hints(EditedIDParams)
    for f in dataclasses.fields(EditedIDParams):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f"{PARAM_HELP.get(f.name, '')} (default: {_show(default)})"
        hint = hints[f.name]
        if f.name == "element_words":
            group.add_argument(
                "--element",
                "--element-words",
                dest="element_words",
                nargs="+",
                action="extend",
                default=None,
                metavar="WORD",
                help=help_text,
            )
        elif hint is bool:
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        elif f.name in ("dpm_range", "overlap"):
            kind = int if f.name == "dpm_range" else float
            group.add_argument(
                flag,
                dest=f.name,
                nargs=2,
                type=kind,
                default=None,
                metavar=("A", "B"),
                help=help_text,
            )
        elif f.name in ("gate_blocks", "face_words"):
            group.add_argument(flag, dest=f.name, nargs="+", default=None, help=help_text)
        elif f.name == "max_batch_faces":
            group.add_argument(flag, dest=f.name, type=int, default=None, help=help_text)
        else:
            kind = type(default)
            group.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)
    parser.add_argument(
        "--params-json",
        type=Path,
        help="Read parameters from a JSON file (a sidecar works); options override it.",
    )


def _show(value) -> str:
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def params_from_args(args: argparse.Namespace) -> EditedIDParams:
    base: dict = {}
    if getattr(args, "params_json", None):
        path = args.params_json
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(f"{path}: cannot read parameters ({error}).") from error
        base = data.get("diagnostics", {}).get("params", data.get("params", data))
    for f in dataclasses.fields(EditedIDParams):
        value = getattr(args, f.name, None)
        if value is not None:
            base[f.name] = value
    return EditedIDParams.from_dict(base)


# --- commands -------------------------------------------------------------------------
def _progress_printer(quiet: bool):
    def on_step(stage: str, step: int, total: int, preview) -> None:
        if not quiet:
            print(f"  {stage:<13} {step}/{total}", file=sys.stderr, flush=True)

    return on_step


def cmd_restore_crop(args: argparse.Namespace) -> int:
    from engine.diffusion.restore import FacePair, restore_faces
    from engine.io.files import atomic_write_text, sha256_file
    from engine.io.images import read_mask, read_rgb, write_image_atomic
    from engine.models.fallback import restore_with_fallback
    from engine.models.loading import LowMemory, load_sd_model

    params = params_from_args(args)
    inputs = {
        "original": args.original,
        "edited": args.edited,
        "face_mask": args.face_mask,
        "element_mask": args.element_mask,
    }
    out = Path(args.out)
    for name, path in inputs.items():
        if Path(path).exists() and out.resolve() == Path(path).resolve():
            raise InputError(
                f"{out}: the output would overwrite the {name} input; choose another name."
            )
    if out.exists() and not args.overwrite:
        raise InputError(
            f"{out}: already exists. Pass --overwrite to replace it or choose another name."
        )
    pair = FacePair(
        read_rgb(args.original),
        read_rgb(args.edited),
        read_mask(args.face_mask),
        read_mask(args.element_mask),
        name=Path(args.edited).name,
    )
    low = LowMemory(
        attention_slicing=args.low_vram, vae_tiling=args.low_vram, cpu_offload=args.cpu_offload
    )
    started = time.perf_counter()
    model = load_sd_model(
        args.model,
        device=args.device,
        dtype=args.dtype,
        allow_pickle=args.allow_pickle,
        allow_download=args.allow_download,
        low_memory=low,
    )
    loaded = time.perf_counter()
    if not args.quiet:
        print(
            f"Model {model.model_id} on {model.device} ({model.dtype}) in {loaded - started:.1f} s",
            file=sys.stderr,
        )
    result = restore_with_fallback(
        lambda m: restore_faces(m, [pair], params, on_step=_progress_printer(args.quiet)),
        model,
        on_message=lambda text: print(f"warning: {text}", file=sys.stderr),
    )
    write_image_atomic(out, result.faces[0].restored)
    sidecar = {
        "tool": "editedid-cli restore-crop",
        "version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": {
            name: {"path": str(Path(p).resolve()), "sha256": sha256_file(p)}
            for name, p in inputs.items()
        },
        "output": str(out.resolve()),
        "seconds": round(time.perf_counter() - loaded, 3),
        "diagnostics": result.diagnostics(),
    }
    sidecar_path = out.with_name(out.name + ".json")
    atomic_write_text(sidecar_path, json.dumps(sidecar, indent=2))
    print(out)
    return EXIT_OK


def _parse_faces(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError as error:
        raise InputError(
            f"--faces takes face numbers separated by commas, e.g. 0,2 (got {text!r})."
        ) from error


def cmd_restore(args: argparse.Namespace) -> int:
    from engine.photo.pipeline import restore_photo_files

    params = params_from_args(args)
    model = None
    if args.mode == "diffusion":
        from engine.models.loading import LowMemory, load_sd_model

        low = LowMemory(
            attention_slicing=args.low_vram, vae_tiling=args.low_vram, cpu_offload=args.cpu_offload
        )
        model = load_sd_model(
            args.model,
            device=args.device,
            dtype=args.dtype,
            allow_pickle=args.allow_pickle,
            allow_download=args.allow_download,
            low_memory=low,
        )
    result = restore_photo_files(
        args.original,
        args.edited,
        args.out,
        params,
        model=model,
        mode=args.mode,
        backend=args.face_backend,
        faces=_parse_faces(args.faces),
        on_step=_progress_printer(args.quiet),
        overwrite=args.overwrite,
    )
    if not args.quiet:
        for face in result.faces:
            before = f"{face.id_before.value:.3f}" if face.id_before else "n/a"
            after = f"{face.id_after.value:.3f}" if face.id_after else "n/a"
            print(
                f"face {face.index}: paired with original face {face.original_index}; "
                f"identity ({result.backend}) before {before} -> after {after}",
                file=sys.stderr,
            )
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    print(args.out)
    return EXIT_OK


def _add_model_options(parser: argparse.ArgumentParser, default_model: str) -> None:
    parser.add_argument(
        "--model",
        default=default_model,
        help="SD 1.x diffusers folder, single .safetensors file or hub id "
        f"(default {default_model}, looked up in the models folder).",
    )
    parser.add_argument(
        "--device", default=None, help="cuda, cuda:N or cpu (default: best available)."
    )
    parser.add_argument("--dtype", default=None, help="fp16, bf16 or fp32 (default: fp16 on CUDA).")
    parser.add_argument("--low-vram", action="store_true", help="Attention slicing and VAE tiling.")
    parser.add_argument("--cpu-offload", action="store_true", help="Keep idle model parts in RAM.")
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="Allow .ckpt/.bin checkpoints (they can run code; only trusted files).",
    )
    parser.add_argument(
        "--allow-download",
        action="store_true",
        help="Download a hub model that is not on this machine yet.",
    )


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


# --- parser ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from engine.models.loading import DEFAULT_SD_MODEL

    parser = argparse.ArgumentParser(
        prog="editedid-cli",
        description="Restore the original identity of faces changed by AI image editors "
        "(EditedID on Stable Diffusion 1.x). Runs locally; nothing leaves this machine.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    crop = sub.add_parser(
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
    _add_model_options(crop, DEFAULT_SD_MODEL)
    crop.add_argument("--quiet", action="store_true", help="No progress output.")
    add_param_options(crop)
    crop.set_defaults(func=cmd_restore_crop)

    photo = sub.add_parser(
        "restore",
        help="Restore every paired face of a whole photo.",
        description="Detect and pair the faces of the original and the edited photo, restore "
        "each selected face's identity (all faces in one batch) and paste them back. Pixels "
        "outside the faces stay exactly as edited. A sidecar JSON is written next to --out.",
    )
    photo.add_argument("--original", required=True, type=Path, help="The original photo.")
    photo.add_argument("--edited", required=True, type=Path, help="The AI-edited photo.")
    photo.add_argument("--out", required=True, type=Path, help="Output image (.png, .jpg, .tif).")
    photo.add_argument("--overwrite", action="store_true", help="Replace --out if it exists.")
    photo.add_argument(
        "--faces",
        default=None,
        help="Edited-photo face numbers to restore, e.g. 0,2 (default: all paired).",
    )
    photo.add_argument(
        "--face-backend",
        default="auto",
        choices=["auto", "dlib", "insightface"],
        help="Face detector/recogniser (auto: insightface if installed, else dlib).",
    )
    photo.add_argument(
        "--mode",
        default="diffusion",
        choices=["diffusion", "classic"],
        help="classic: instant blend of the aligned original face, no SD model.",
    )
    _add_model_options(photo, DEFAULT_SD_MODEL)
    photo.add_argument("--quiet", action="store_true", help="No progress output.")
    add_param_options(photo)
    photo.set_defaults(func=cmd_restore)

    from engine.batch.run import add_batch_parser

    add_batch_parser(sub, add_param_options)

    from engine.cli.eval import add_eval_parser

    add_eval_parser(sub, add_param_options)

    models = sub.add_parser("models", help="Download or locate models.")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MODEL
    except (Cancelled, KeyboardInterrupt):
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except EditedIDError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
