"""Time to first paint of the main window, and until the engine is loaded, in fresh processes.

    .venv/bin/python bench/startup_time.py [--runs 5] [--settings fresh|stored]

Each run starts a new interpreter (as a user starting the app), runs `editedid_desktop.app
.main()` offscreen and records, from the moment the process was spawned:
  paint   the first paint event of the main window (what the user first sees),
  ready   the engine loaded (the window's `engine_ready`; absent in versions without it),
  torch   whether torch was already imported when the window first painted.
`fresh` starts with an empty settings folder (a first start); `stored` with the model
source already saved (an ordinary start). Prints a table: median and max per column.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
spawned = float(os.environ["STARTUP_SPAWNED"])
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

app = QApplication(sys.argv[:1])
marks = {}

def window():
    for widget in app.topLevelWidgets():
        if type(widget).__name__ == "MainWindow":
            return widget

class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and "paint" not in marks:
            w = window()
            if w is not None and (obj is w or w.isAncestorOf(obj)):
                marks["paint"] = time.time() - spawned
                marks["torch_at_paint"] = "torch" in sys.modules
        return False

spy = FirstPaint()
app.installEventFilter(spy)

def poll():
    w = window()
    if w is not None and "paint" in marks and getattr(w, "engine_ready", True):
        marks.setdefault("ready", time.time() - spawned)
        if not hasattr(w, "engine_ready"):
            marks["ready"] = marks["paint"]  # the old code loaded everything before painting
        w.close()
        app.quit()

timer = QTimer()
timer.timeout.connect(poll)
timer.start(20)
from editedid_desktop import app as app_module
app_module.main(["editedid"])
print("MARKS " + json.dumps(marks), flush=True)
"""


def one_run(settings: str) -> dict:
    with tempfile.TemporaryDirectory() as config:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=config)
        env.setdefault("OMP_NUM_THREADS", "1")
        if settings == "stored":
            folder = Path(config) / "EditedID"
            folder.mkdir()
            (folder / "EditedID Desktop.conf").write_text(
                "[model]\nsource=CompVis/stable-diffusion-v1-4\n", encoding="utf-8"
            )
        env["STARTUP_SPAWNED"] = repr(time.time())
        out = subprocess.run(
            [sys.executable, "-c", CHILD],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    for line in out.stdout.splitlines():
        if line.startswith("MARKS "):
            return json.loads(line[6:])
    raise RuntimeError(f"no marks from the child:\n{out.stdout}\n{out.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--settings", choices=("fresh", "stored"), default="fresh")
    args = parser.parse_args()
    runs = [one_run(args.settings) for _ in range(args.runs)]
    print(f"{args.runs} runs, settings {args.settings}, QT_QPA_PLATFORM=offscreen")
    print(f"{'':22}{'median s':>10}{'max s':>10}")
    for key, name in (("paint", "first paint"), ("ready", "engine loaded")):
        values = [r[key] for r in runs]
        print(f"{name:22}{statistics.median(values):10.2f}{max(values):10.2f}")
    torch = sum(r["torch_at_paint"] for r in runs)
    print(f"torch imported before the first paint in {torch} of {args.runs} runs")


if __name__ == "__main__":
    main()
