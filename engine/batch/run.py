"""Folder mode: pair originals with edited photos by file name and restore them all.

    plan = plan_batch("originals/", "edited/", "restored/")
    print(plan.rule_text, plan.unpaired_originals, plan.unpaired_edited)
    report = run_batch(BatchJob(plan, EditedIDParams(), mode="classic"))

Built for overnight runs over a studio's folders: a bad file is logged with its error and
the batch goes on; every output is written atomically with its sidecar; a stopped or
killed batch resumes, skipping every output whose sidecar is ours, says it finished and
records the sha256 of the inputs as they are now (a re-exported edit is done again); no
image is kept from one file to the next. Pause and cancel are honoured between files and
inside a file at every diffusion step. One batch at a time writes into an output folder
(`engine.batch.lock`); temp files a killed run left there are removed on the next run.

The report (CSV, with a Markdown and a JSON summary) never replaces a file that is not
a report of this output folder (explicit paths: never an existing file unless
`ReportTarget.overwrite`), never lands in an input folder, and can be written elsewhere
(`ReportTarget.folder`) or not at all. Each file's row is appended to the CSV as it
finishes; the full reports are rewritten at most every `REPORT_INTERVAL_S` seconds and at
the end.

The code lives by job in `engine.batch.plan` (pairing, `BatchPlan`, `plan_batch`),
`engine.batch.job` (`BatchJob`: what a batch does; `PhotoProcessor`: how a file is
restored), `engine.batch.report` (rows, the report's place, CSV/Markdown/JSON) and
`engine.batch.runner` (`run_batch`, the executors, progress); this module is the entry
point callers import, and names them all again.
"""

from __future__ import annotations

from engine.batch.job import (
    BatchJob,
    FileRequest,
    PhotoProcessor,
    PipelineProcessor,
    ReportTarget,
    check_processor,
)
from engine.batch.plan import (
    BatchItem,
    BatchPlan,
    is_finished,
    output_name,
    plan_batch,
    rule_text,
)
from engine.batch.report import (
    FACE_SELECTION_TEXT,
    FACE_SELECTIONS,
    REPORT_COLUMNS,
    REPORT_NAME,
    REPORT_TOOL,
    BatchReport,
    BatchRow,
    report_files,
    resolve_report_path,
)
from engine.batch.runner import (
    REPORT_INTERVAL_S,
    BatchExecutor,
    BatchProgress,
    CancelToken,
    LocalExecutor,
    run_batch,
)
from engine.io.export import sidecar_path
from engine.io.folders import RULES

__all__ = [
    "FACE_SELECTIONS",
    "FACE_SELECTION_TEXT",
    "REPORT_COLUMNS",
    "REPORT_INTERVAL_S",
    "REPORT_NAME",
    "REPORT_TOOL",
    "RULES",
    "BatchExecutor",
    "BatchItem",
    "BatchJob",
    "BatchPlan",
    "BatchProgress",
    "BatchReport",
    "BatchRow",
    "CancelToken",
    "FileRequest",
    "LocalExecutor",
    "PhotoProcessor",
    "PipelineProcessor",
    "ReportTarget",
    "check_processor",
    "is_finished",
    "output_name",
    "plan_batch",
    "report_files",
    "resolve_report_path",
    "rule_text",
    "run_batch",
    "sidecar_path",
]
