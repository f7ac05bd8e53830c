"""`editedid-cli batch`: folder mode on the command line (engine.batch.run does the work).

editedid-cli batch --original-dir O --edited-dir E --out-dir R [--mode classic] [--check]
    [--report FILE.csv | --report-dir DIR | --no-report] [--overwrite-report]
    [--cluster local|auto|ray://HOST:PORT|HOST:PORT [--workers N]]

Without --cluster the batch runs in this process and nothing of Ray is imported; with it
the files are restored by Ray workers (engine.batch.cluster), this process still writes
every result and report.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from engine.batch.lock import check_unlocked
from engine.batch.plan import OUTPUT_FORMATS
from engine.batch.run import (
    FACE_SELECTIONS,
    REPORT_NAME,
    RULES,
    BatchJob,
    BatchPlan,
    BatchProgress,
    ReportTarget,
    plan_batch,
    rule_text,
    run_batch,
)
from engine.cli.options import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_MODEL,
    EXIT_OK,
    add_location_options,
    add_param_options,
    add_restorer_options,
    model_spec_from_args,
    params_from_args,
    parse_subcommand,
    restorer_from_args,
    safe_output,
)
from engine.errors import EditedIDError, InputError, ModelError
from engine.restorers import get_restorer, restorer_class

CLUSTER_HELP = (
    "Restore on Ray workers instead of this process: 'local' starts a private Ray on this "
    "computer (ended with the batch); 'auto' joins the Ray started here with `ray start`; "
    "ray://HOST:10001 joins a studio cluster from any machine (Ray Client); HOST:6379 "
    "from a machine of the cluster. Each worker loads the model (--model, looked up in "
    "its own models folder) once and restores whole photos; only image bytes travel, "
    "and this computer writes every result. Needs Ray (pip install "
    "'editedid-desktop[cluster]')."
)


def cluster_address(text: str) -> str:
    """--cluster's value: local, auto, ray://HOST:PORT or HOST:PORT."""
    value = text.strip()
    if value in ("local", "auto") or value.startswith("ray://"):
        return value
    host, _, port = value.rpartition(":")
    if host and port.isdigit():
        return value
    raise argparse.ArgumentTypeError(
        f"{text!r}: use local, auto, ray://HOST:PORT or HOST:PORT (the Ray head's address)."
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of workers, 1 or more.")
    return value


def add_batch_parser(subparsers) -> argparse.ArgumentParser:
    """Add `batch` to an argparse subparsers object; its func is `cmd_batch`."""
    parser = subparsers.add_parser(
        "batch",
        help="Restore every pair of an original folder and an edited folder.",
        description="Folder mode. " + rule_text("stem"),
    )
    parser.add_argument("--original-dir", required=True, type=Path, help="Original photos.")
    parser.add_argument("--edited-dir", required=True, type=Path, help="Edited photos.")
    parser.add_argument(
        "--out-dir", required=True, type=Path, help="Results (created; not an input folder)."
    )
    parser.add_argument(
        "--face-backend", choices=("auto", "dlib", "insightface"), default="auto", dest="backend"
    )
    report = parser.add_mutually_exclusive_group()
    report.add_argument(
        "--report",
        type=Path,
        default=None,
        help=f"Report CSV file (default: {REPORT_NAME} in the output folder); a .md and a "
        ".json summary are written next to it. An existing file is never replaced unless "
        "--overwrite-report.",
    )
    report.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help=f"Write the report ({REPORT_NAME} and summaries) into this existing folder "
        "instead of the output folder, so the delivered folder lists no file names.",
    )
    report.add_argument(
        "--no-report",
        action="store_true",
        help="Write no report files (the summary is still printed).",
    )
    parser.add_argument(
        "--overwrite-report",
        action="store_true",
        help="Allow the report to replace existing files at its path (never an input).",
    )
    parser.add_argument("--rule", choices=RULES, default="stem", help="Pairing rule.")
    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default=None,
        help="Save every result in this format (psd: a layered Photoshop document with the "
        "restoration's mask, the aligned original and each face's masks). Default: the "
        "edited file's format (PNG for formats that cannot be written).",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace outputs that exist but are not marked finished.",
    )
    add_location_options(parser)
    parser.add_argument(
        "--faces",
        choices=FACE_SELECTIONS,
        default="changed",
        help="changed (default): restore only the faces whose identity the edit changed; "
        "unchanged faces and detections that look like no face are left as edited and the "
        "report says why, per face numbered left to right from 1. all: every paired face.",
    )
    cluster = parser.add_argument_group("studio scale (Ray)")
    cluster.add_argument("--cluster", type=cluster_address, default=None, help=CLUSTER_HELP)
    cluster.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="Ray workers to start (default: one per GPU of the cluster, or of this "
        "computer with --cluster local; 1 where there is none).",
    )
    parser.add_argument("--check", action="store_true", help="Only show the pairing; run nothing.")
    parser.add_argument("--quiet", action="store_true", help="No progress output.")
    add_restorer_options(parser)
    add_param_options(parser)
    parser.set_defaults(func=cmd_batch)
    return parser


def _print_plan(plan: BatchPlan, stream) -> None:
    print(plan.rule_text, file=stream)
    print(plan.summary(), file=stream)
    for line in plan.problems():
        print(f"  ! {line}", file=stream)


def _progress_printer(quiet: bool):
    last = [0.0]

    def show(p: BatchProgress) -> None:
        if quiet:
            return
        now = time.monotonic()
        eta = f" ETA {p.eta_s / 60:.1f} min" if p.eta_s is not None else ""
        if p.stage in ("file done", "file failed", "skipped"):
            status = p.row.status if p.row else p.stage
            extra = f": {p.message}" if p.stage == "file failed" else ""
            where = f" [{p.worker}]" if p.worker else ""
            line = f"[{p.index + 1}/{p.total}] {p.file} {status}{extra}{where}{eta}"
            print(line, file=sys.stderr)
        elif p.stage in ("worker ready", "worker lost", "retry"):
            print(p.message, file=sys.stderr)
        elif p.stage in ("stopped", "cancelled", "paused"):
            print(p.message, file=sys.stderr)
        elif p.steps and now - last[0] > 1.0:
            last[0] = now
            print(f"  {p.file} {p.stage} {p.step}/{p.steps}{eta}", file=sys.stderr, flush=True)

    return show


def cmd_batch(args: argparse.Namespace, processor=None) -> int:
    """Exit 0 when at least one pair is restored or already finished; 1 when nothing
    succeeded; 2 for bad arguments or folders; 3 when the model cannot load; 130 when
    cancelled. Failures are listed at the end."""
    try:
        job = _job(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    plan = job.plan
    _print_plan(plan, sys.stderr)
    if args.check:
        return EXIT_OK
    if not plan.total:
        print("error: no pairs found; nothing to do.", file=sys.stderr)
        return EXIT_INPUT
    try:  # the report's place and the output folder's lock, before any model is loaded
        job.report.resolve(plan)
        check_unlocked(plan.output_dir)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    if args.workers is not None and not args.cluster:
        print("error: --workers needs --cluster (local, auto or an address).", file=sys.stderr)
        return EXIT_INPUT
    try:
        executor = _cluster_executor(args, processor) if args.cluster else None
        # Nothing left to restore, a stand-in processor or a cluster (whose workers load
        # it): no model is loaded here.
        loads = plan.items and processor is None and executor is None
        restorer = restorer_from_args(args) if loads else get_restorer(args.mode)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MODEL
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    try:
        report = run_batch(
            job,
            restorer=restorer,
            processor=processor,
            on_progress=_progress_printer(args.quiet),
            executor=executor,
        )
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except ModelError as error:  # no cluster worker could load the model
        print(f"error: {error}", file=sys.stderr)
        return EXIT_MODEL
    except EditedIDError as error:  # the cluster could not run the batch
        print(f"error: {error} Run the same command again to resume.", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume.", file=sys.stderr)
        return EXIT_CANCELLED
    print(report.final_message(), file=sys.stderr)
    if report.failures:
        print("Failures:", file=sys.stderr)
        for name, error in report.failures:
            print(f"  {Path(name).name}: {error}", file=sys.stderr)
    if report.report_error:
        print(f"warning: the report could not be written: {report.report_error}", file=sys.stderr)
    elif report.report_path is not None:
        print(f"Report: {report.report_path}")
    if report.cancelled:
        return EXIT_CANCELLED
    return EXIT_OK if report.succeeded else EXIT_FAILED


def _job(args: argparse.Namespace) -> BatchJob:
    """The batch the command line asks for (InputError for bad folders or values)."""
    params = params_from_args(args)
    plan = plan_batch(
        args.original_dir, args.edited_dir, args.out_dir, rule=args.rule, out_format=args.format
    )
    return BatchJob(
        plan,
        params,
        mode=args.mode,
        backend=args.backend,
        faces=args.faces,
        overwrite=args.overwrite,
        strip_location=args.strip_location,
        report=ReportTarget(
            path=args.report,
            folder=args.report_dir,
            write=not args.no_report,
            overwrite=args.overwrite_report,
        ),
    )


def _cluster_executor(args: argparse.Namespace, processor):
    """The Ray executor --cluster asks for (Ray is imported here, and only here)."""
    try:
        from engine.batch.cluster import RayExecutor
    except ImportError as error:
        raise InputError(
            f"--cluster needs Ray, which is not installed ({error}). Install it with: "
            "pip install 'editedid-desktop[cluster]'"
        ) from None
    from engine.batch.remote import WorkerSpec

    needs_model = restorer_class(args.mode).needs_model
    spec = WorkerSpec(args.mode, model_spec_from_args(args) if needs_model else None, processor)
    return RayExecutor(spec, cluster=args.cluster, workers=args.workers)


def batch_cli(argv: Sequence[str] | None = None, *, processor=None) -> int:
    """`editedid-cli batch ...` on its own: parse argv (without the word 'batch') and run."""
    args = parse_subcommand("editedid-cli batch", add_batch_parser, "batch", argv)
    with safe_output():
        return cmd_batch(args, processor=processor)
