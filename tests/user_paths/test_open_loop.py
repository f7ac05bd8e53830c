"""The open-pair case 20 times in a row (issue 20: 12 of 13 real sessions froze or crashed
on opening photos): `editedid ORIGINAL EDITED` with the portrait, the two hostile pairs, and
the portrait with a camera-RAW original (PNG edit) and with a HEIC original (WebP edit)
in turn, until the classic preview shows, then Ctrl+Q. 0 crashes and 0 freezes; the figure
line gives runs, crashes, freezes, the median time to the first preview and the longest
time the UI thread went unheard."""

from __future__ import annotations

import os
import statistics
import time

import pytest

from tests.user_paths.driver import AppFailure

pytestmark = [pytest.mark.user, pytest.mark.slow]

RUNS = int(os.environ.get("EDITEDID_USER_LOOP_RUNS", "20"))  # fewer for a quick look
FIRST_PREVIEW_S = 180


def first_preview(state: dict, edited: str) -> bool:
    """The pair is analysed and its classic preview shown (a pair whose faces are all left
    alone by default, such as the same person with the mouth covered, has none to show)."""
    if state["edited_path"] != edited or not state["analysis"] or state["busy"]:
        return False
    return state["classic"] or not any(p["enabled"] for p in state["panels"].values())


def test_open_pair_twenty_times(start_app, pairs, capsys):
    order = ["six-people", "portrait-mouth", "portrait", "portrait-raw", "portrait-heic"]
    crashes, freezes, other = [], [], []
    times, silences = [], []
    for run in range(RUNS):
        name = order[run % len(order)]
        original, edited = pairs[name]
        started = time.monotonic()
        app = None
        try:
            app = start_app([original, edited], name=f"run{run:02d}")
            app.wait_for(
                lambda s, e=str(edited): first_preview(s, e), FIRST_PREVIEW_S, f"{name} shown"
            )
            times.append(time.monotonic() - started)
            app.state()  # still answering after the preview
            code = app.quit_with_ctrl_q()
            if code != 0:
                crashes.append(f"run {run} ({name}): exit code {code} after Ctrl+Q")
        except AppFailure as failure:
            text = str(failure)
            kind = crashes if " crashed " in text else freezes if " froze" in text else other
            kind.append(f"run {run} ({name}): {text}")
        finally:
            if app is not None:
                silences.append(app.longest_silence)
                app.kill()
    median = statistics.median(times) if times else float("nan")
    figure = (
        f"user-path open-pair loop: runs {RUNS}, crashes {len(crashes)}, freezes "
        f"{len(freezes)}, other failures {len(other)}, median time to first preview "
        f"{median:.1f} s, longest UI silence {max(silences, default=0):.1f} s"
    )
    with capsys.disabled():
        print("\n" + figure)
    problems = crashes + freezes + other
    assert not problems, figure + "\n\n" + "\n\n".join(problems)
