"""The shape of the house, checked rather than trusted (docs/ARCHITECTURE.md).

import-linter reads the contracts in pyproject.toml: the layers (app > command line >
batch, evaluation > restorers > photo > diffusion, faces > models > io > params >
errors), the engine without Qt, no import cycles between the engine's parts, the
desktop app's document model (editedid_desktop.model) without Qt, Ray imported by
engine.batch.cluster alone, no import cycles between the app's parts, and the app's
controllers importing neither each other nor the window.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(capsys):
    from importlinter.cli import lint_imports

    # lint_imports calls logging.config.dictConfig, which disables every logger that
    # exists already (the engine's too): switch them back on for the tests that follow.
    enabled = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.disabled
    ]
    cwd = os.getcwd()
    os.chdir(ROOT)  # import-linter finds the packages from the working directory
    try:
        code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    finally:
        os.chdir(cwd)
        for logger in enabled:
            logger.disabled = False
    report = capsys.readouterr().out
    assert code == 0, report
    assert "BROKEN" not in report and report.count("KEPT") == 8
