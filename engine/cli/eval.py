"""`editedid-cli eval`: score a folder of (original, edited, restored) sets, or an ablation.

  editedid-cli eval FOLDER --out OUT [--clip-model PATH|HUB_ID] [--element glasses]
  editedid-cli eval --ablation --original o.jpg --edited e.jpg --model PATH --out OUT [params]

engine.cli.commands wires it in with `add_eval_parser(sub)`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli.options import (
    EXIT_OK,
    add_model_options,
    add_param_options,
    params_from_args,
    parse_subcommand,
    restorer_from_args,
    run_command,
)
from engine.errors import InputError, ModelNotFoundError


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Add `eval` to an argparse subparsers object; returns the new parser (func=cmd_eval)."""
    from engine.evaluation.evaluate import __doc__ as evaluate_doc

    rules = (evaluate_doc or "").split("Sets of", 1)[-1].split("Per set", 1)[0].strip()
    parser = subparsers.add_parser(
        "eval",
        help="Evaluate restored photos (ID-Sim, CLIP-S, PSNR/SSIM) or run an ablation.",
        description="Folder mode: score every (original, edited, restored) set of FOLDER and "
        "write eval.csv, eval_faces.csv, eval.md and plots to --out. Sets of "
        + rules.replace("\n", " ")
        + " Ablation mode (--ablation): restore one pair with full EditedID, alignment off, "
        "hybrid solver off, gating off and classic mode, side by side (paper Table 7).",
    )
    parser.add_argument("folder", nargs="?", type=Path, help="Folder of evaluation sets.")
    parser.add_argument("--out", required=True, type=Path, help="Report folder (created).")
    parser.add_argument(
        "--clip-model",
        default=None,
        help="CLIP folder or hub id for CLIP-S (default: openai/clip-vit-large-patch14 if it "
        "is in the models folder; otherwise CLIP-S is left out with a note).",
    )
    parser.add_argument("--models-dir", type=Path, default=None, help="Models folder.")
    parser.add_argument(
        "--allow-download",
        action="store_true",
        help="Download a missing CLIP (or, in ablation mode, SD) model from the hub.",
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="Allow pickle checkpoints (.bin/.ckpt/.pt; ImageReward needs it). Trusted only.",
    )
    parser.add_argument(
        "--image-reward",
        action="store_true",
        help="Also score ImageReward (needs the optional image-reward package and its model).",
    )
    parser.add_argument(
        "--face-backend",
        choices=("auto", "dlib", "insightface"),
        default="auto",
        help="Identity model: insightface (ArcFace) if installed, else dlib.",
    )
    ablation = parser.add_argument_group("ablation mode")
    ablation.add_argument("--ablation", action="store_true", help="Run the ablation instead.")
    ablation.add_argument("--original", type=Path, help="The original photo (ablation).")
    ablation.add_argument("--edited", type=Path, help="The edited photo (ablation).")
    # The SD model's options (--allow-pickle and --allow-download are the
    # ones above: they cover the CLIP and the SD model alike).
    add_model_options(ablation)
    parser.add_argument("--quiet", action="store_true", help="No progress output.")
    add_param_options(parser)
    parser.set_defaults(func=cmd_eval)
    return parser


def _load_clip(args: argparse.Namespace, notes: list[str]):
    from engine.evaluation.clip_score import DEFAULT_CLIP_MODEL, ClipScorer

    if args.clip_model:  # asked for explicitly: a missing model is an error
        return ClipScorer.load(
            args.clip_model,
            allow_download=args.allow_download,
            models_dir=args.models_dir,
            allow_pickle=args.allow_pickle,
        )
    try:
        return ClipScorer.load(
            DEFAULT_CLIP_MODEL, allow_download=args.allow_download, models_dir=args.models_dir
        )
    except ModelNotFoundError as error:
        notes.append(f"CLIP-S left out: {error}")
        return None


def cmd_eval(args: argparse.Namespace) -> int:
    from engine.faces.detection import get_analyzer

    notes: list[str] = []
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    words = tuple(args.element_words) if getattr(args, "element_words", None) else None
    if args.ablation:
        return _cmd_ablation(args, say, notes)
    if args.folder is None:
        raise InputError("Give the FOLDER of evaluation sets (or --ablation with its inputs).")
    clip = _load_clip(args, notes)
    analyzer = get_analyzer(args.face_backend, args.models_dir)
    from engine.evaluation.evaluate import evaluate_folder, write_report

    report = evaluate_folder(
        args.folder,
        analyzer=analyzer,
        clip=clip,
        element_words=words,
        image_reward=args.image_reward,
        reward_options={"models_dir": args.models_dir, "allow_pickle": args.allow_pickle},
        progress=lambda i, n, name: say(f"  [{i + 1}/{n}] {name}"),
    )
    if notes and not report.clip_model:
        report.clip_note = notes[0]
    written = write_report(report, args.out)
    for problem in report.problems:
        say(f"warning: {problem}")
    for image in report.images:
        if image.status != "ok":
            say(f"error: {image.name} ({image.variant}): {image.error}")
    for variant, m in report.means().items():
        before = "n/a" if m["id_before"] is None else f"{m['id_before']:.3f}"
        after = "n/a" if m["id_after"] is None else f"{m['id_after']:.3f}"
        say(
            f"{variant}: {m['sets']} sets, {m['faces']} faces; {report.id_label} "
            f"before {before} -> after {after}"
        )
    print(written["md"])
    return EXIT_OK


def _cmd_ablation(args: argparse.Namespace, say, notes: list[str]) -> int:
    from engine.evaluation.evaluate import run_ablation
    from engine.faces.detection import get_analyzer

    if args.original is None or args.edited is None:
        raise InputError("--ablation needs --original and --edited photos.")
    params = params_from_args(args)
    model = restorer_from_args(args, "diffusion").model
    clip = _load_clip(args, notes)
    for note in notes:
        say(f"warning: {note}")
    report = run_ablation(
        args.original,
        args.edited,
        model,
        params,
        args.out,
        analyzer=get_analyzer(args.face_backend, args.models_dir),
        clip=clip,
        on_step=None
        if args.quiet
        else (lambda stage, step, total, preview: say(f"  {stage:<13} {step}/{total}")),
    )
    for row in report.rows:
        after = row.scores.id_after if row.scores else None
        shown = "n/a" if after is None else f"{after:.3f}"
        say(f"{row.variant:<17} {row.status:<6} ID after {shown} {row.error}")
    print(report.files["md"])
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (tests, `python -m engine.cli.eval`): errors as the main CLI maps them."""
    return run_command(parse_subcommand("editedid-cli", add_eval_parser, "eval", argv))


if __name__ == "__main__":
    sys.exit(main())
