"""The user-path tests' state file (editedid_desktop/state_probe.py): what it says matches
the window, and it keeps being rewritten from the UI thread's event loop."""

from __future__ import annotations

import json

from PySide6.QtCore import QPoint

from editedid_desktop.state_probe import ENV_VAR, StateProbe, install_probe, snapshot
from tests.window_fixtures import photo_pair, settings, window  # noqa: F401 - fixtures


def _inside(inner, outer) -> bool:
    x, y, w, h = inner
    ox, oy, ow, oh = outer
    return ox <= x and oy <= y and x + w <= ox + ow and y + h <= oy + oh


def test_the_snapshot_places_faces_and_controls_on_the_screen(qtbot, window, photo_pair):  # noqa: F811
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        window.open_photos(*photo_pair)
    state = snapshot(window, 7)
    assert state["seq"] == 7 and state["title"] == window.windowTitle()
    assert state["edited_path"] == str(photo_pair[1]) and state["analysis"] and state["classic"]
    (face,) = state["faces"]
    assert _inside(face["screen"], state["canvas"])
    # the face's centre on the screen is where the canvas draws the box's centre
    x0, y0, x1, y1 = face["box"]
    viewport = window.canvas.viewport()
    centre = viewport.mapToGlobal(window.canvas.image_to_view((x0 + x1) / 2, (y0 + y1) / 2))
    x, y, w, h = face["screen"]
    assert abs(x + w / 2 - centre.x()) <= 2 and abs(y + h / 2 - centre.y()) <= 2
    panel = state["panels"][str(window.session.faces[0].index)]
    assert _inside(panel["combo"], panel["panel"])
    combo = window.face_list.panels[window.session.faces[0].index].pairing_combo
    assert panel["combo"][:2] == list(combo.mapToGlobal(QPoint(0, 0)).toTuple())
    assert panel["combo_text"] == combo.currentText()
    assert panel["lambda_o_text"] == "0.50"
    assert state["widgets"]["run_button"] is not None
    assert state["params"]["resolution"] is None  # the Advanced dock is closed
    assert "File" in state["widgets"]["menu_bar"]
    assert state["layers"]["result"] and state["layers"]["edited"]
    window.layer_actions["result"].setChecked(False)  # View > Show Result off
    assert snapshot(window)["layers"]["result"] is False


def test_the_file_is_rewritten_while_the_event_loop_runs(qtbot, window, tmp_path, monkeypatch):  # noqa: F811
    target = tmp_path / "state.json"
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert install_probe(window) is None  # opt-in only
    monkeypatch.setenv(ENV_VAR, str(target))
    probe = install_probe(window)
    assert isinstance(probe, StateProbe)
    first = json.loads(target.read_text())["seq"]
    qtbot.waitUntil(lambda: json.loads(target.read_text())["seq"] >= first + 3, timeout=5000)
    probe.timer.stop()
