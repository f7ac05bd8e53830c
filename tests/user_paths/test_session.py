"""A retoucher's session with the real `editedid` process in a real X session (issue 20):
started with two photos on the command line, File > Open, the mouse wheel over every face
panel, a λo drag, the classic preview, Advanced settings typed in, a diffusion Restore on
the tiny model cancelled with Esc and then run to the end, Save As, Ctrl+Q. After every
step the process is alive and its UI thread answers within 2 s (driver.RESPONSIVE_S), and
the screenshot shows what the step should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.user_paths.driver import RunningApp, changed_fraction

pytestmark = pytest.mark.user

ANALYSIS_S = 180  # cold start: torch, diffusers, dlib models on a loaded 2-core machine
RESTORE_S = 400


def centre(rect: list[int]) -> tuple[int, int]:
    x, y, w, h = rect
    return x + w // 2, y + h // 2


def tick_box(rect: list[int]) -> tuple[int, int]:
    """Where to click a check box: its indicator at the left (the widget may span the row,
    and a click on its empty part toggles nothing)."""
    x, y, _, h = rect
    return x + 8, y + h // 2


def check(app: RunningApp, ok: bool, what: str) -> None:
    if not ok:
        raise app.failure(f"showed the wrong thing: {what}")


def analysed(app: RunningApp, edited: Path, timeout: float = ANALYSIS_S) -> dict:
    """Wait for the pair's analysis and its classic preview (a face left alone by default
    is ticked first, as the user would); the title names the edited photo."""
    state = app.wait_for(
        lambda s: s["edited_path"] == str(edited) and s["analysis"] and not s["busy"],
        timeout,
        f"the analysis of {edited.name}",
    )
    title = app.window_name()
    check(app, title.startswith(edited.name), f"window title {title!r}, not {edited.name}")
    if not any(p["enabled"] for p in state["panels"].values()):
        first = str(state["faces"][0]["index"])
        app.click(*tick_box(scroll_list_to(app, first, "enabled_box")["enabled_box"]))
    return app.wait_for(lambda s: s["classic"] and not s["busy"], 120, "the classic preview")


def result_layer_shows(app: RunningApp, step: str, min_changed: float = 0.15) -> None:
    """Screenshots with the result layer on and off (View > Show Result, Alt+3): the
    enabled faces change and the photo around them stays as it was."""
    state = app.wait_for(lambda s: s["layers"]["result"], 5, "the result layer on screen")
    with_result = app.screenshot(f"{step}-result-on")
    app.focus()
    app.key("alt+3")
    hidden = app.wait_for(lambda s: not s["layers"]["result"], 5, "Alt+3 hides the result")
    app.wait_for(lambda s: s["seq"] > hidden["seq"] + 2, 5, "the repaint")  # 3 event loops on
    without = app.screenshot(f"{step}-result-off")
    app.key("alt+3")
    app.wait_for(lambda s: s["layers"]["result"], 5, "Alt+3 shows the result again")
    enabled = {int(i) for i, p in state["panels"].items() if p["enabled"]}
    faces = [f for f in state["faces"] if f["index"] in enabled and f["screen"]]
    check(app, bool(faces), f"{step}: no enabled face on the screen")
    changed = [changed_fraction(with_result, without, f["screen"]) for f in faces]
    check(
        app,
        max(changed) >= min_changed,
        f"{step}: the result layer does not change the faces (changed {changed})",
    )
    x, y, w, h = state["canvas"]
    outside = np.ones((h, w), bool)
    for face in state["faces"]:
        if face["screen"]:
            fx, fy, fw, fh = face["screen"]
            pad = max(fw, fh)  # masks reach past the detected box (hair, chin)
            outside[
                max(0, fy - y - pad) : fy - y + fh + pad, max(0, fx - x - pad) : fx - x + fw + pad
            ] = False
    diff = np.abs(
        with_result[y : y + h, x : x + w].astype(np.int16) - without[y : y + h, x : x + w]
    )
    stray = float((diff.max(axis=2) > 12)[outside].mean())
    check(
        app, stray < 0.02, f"{step}: the result changed the photo away from the faces ({stray:.3f})"
    )


def scroll_list_to(app: RunningApp, index: str, key: str) -> dict:
    """Turn the wheel over the face list, a notch at a time, until panel `index`'s `key`
    control ("combo", "lambda_o") is on the screen; the panel's state then."""
    for _ in range(40):
        state = app.state()
        panel = state["panels"][index]
        if panel[key]:
            return panel
        order = [str(f["index"]) for f in state["faces"]]
        shown = [i for i in order if state["panels"][i]["panel"]]
        check(app, bool(shown), "no face panel on the screen")
        down = order.index(index) > order.index(shown[0])
        app.wheel(*centre(state["panels"][shown[0]]["panel"]), 1 if down else -1)
    raise app.failure(f"face panel {index}'s {key} never came into view")


def scroll_params_to(app: RunningApp, name: str) -> list[int]:
    """Turn the wheel over the Advanced panel until its `name` box is on the screen."""
    for _ in range(40):
        params = app.wait_for(lambda s: s["params"]["panel"], 10, "the Advanced panel")["params"]
        if params[name]:
            return params[name]
        app.wheel(*centre(params["panel"]), 1)
    raise app.failure(f"the Advanced panel's {name} box never came into view")


def open_through_dialog(app: RunningApp, menu_item: str, path: Path) -> None:
    """File > `menu_item` with the mouse, the path typed into Qt's file dialog, Enter."""
    state = app.state()
    app.focus()
    app.click(*centre(state["widgets"]["menu_bar"]["File"]))
    menu = app.wait_for(lambda s: s["popup"] and menu_item in s["popup"]["items"], 5, "File menu")
    app.click(*centre(menu["popup"]["items"][menu_item]))
    dialog = app.wait_for(
        lambda s: s["modal"] and s["modal"]["class"] == "QFileDialog", 10, "dialog"
    )
    app.screenshot(f"dialog-{path.stem}")
    assert dialog["modal"]["title"].startswith("Open")
    app.type_text(str(path))
    app.key("Return")
    app.wait_for(lambda s: not s["modal"], 10, "the file dialog closes")


def test_a_retouchers_session_in_a_real_window(start_app, pairs, tmp_path):
    # 1. `editedid ORIGINAL EDITED`, as the menu entry and "Open with" run it: the
    #    rescaled, cropped portrait whose mouth is covered (a crash of issue 20).
    original, edited = pairs["portrait-mouth"]
    app = start_app([original, edited])
    state = analysed(app, edited)
    check(app, state["original_path"] == str(original), "the original is not the first file")
    check(app, len(state["faces"]) == 1, f"{len(state['faces'])} faces in the portrait")
    result_layer_shows(app, "cli-pair")

    # 2. File > Open Original / Open Edited through Qt's file dialog: the six people whose
    #    faces were swapped with their neighbours (the other crash of issue 20).
    six_original, six_edited = pairs["six-people"]
    open_through_dialog(app, "Open Original…", six_original)
    app.wait_for(lambda s: s["original_path"] == str(six_original), 10, "the original opens")
    open_through_dialog(app, "Open Edited…", six_edited)
    state = analysed(app, six_edited)
    check(app, len(state["faces"]) >= 4, f"only {len(state['faces'])} of 6 faces found")
    app.screenshot("six-people")

    # 3. The mouse wheel over every face panel (its "Original face" box): it scrolls the
    #    list and never changes a pairing nor starts an analysis.
    pairings = {i: p["combo_text"] for i, p in state["panels"].items()}
    undo_before = state["undo_enabled"]
    for face in state["faces"]:
        index = str(face["index"])
        panel = scroll_list_to(app, index, "combo")
        app.wheel(*centre(panel["combo"]), 3)
        app.wheel(*centre(panel["combo"]), -3)
        check(app, not app.state()["busy"], f"the wheel over panel {index} started a job")
    now = app.state()
    changed = {
        i: p["combo_text"] for i, p in now["panels"].items() if p["combo_text"] != pairings[i]
    }
    check(app, not changed, f"the wheel changed pairings: {changed}")
    check(app, now["undo_enabled"] == undo_before, "the wheel left something to undo")
    app.screenshot("after-wheel")

    # 4. Drag λo of the first face to the right: its label follows, λe (linked) too.
    first = str(now["faces"][0]["index"])
    panel = scroll_list_to(app, first, "lambda_o")
    label_before = app.screenshot("lambda-before")
    x, y, w, h = panel["lambda_o"]
    app.drag((x + w * panel["lambda_o_slider"] / 100, y + h / 2), (x + w * 0.9, y + h / 2))
    moved = app.wait_for(lambda s: s["panels"][first]["lambda_o_slider"] >= 75, 5, "λo moves")
    p = moved["panels"][first]
    lam = p["lambda_o_slider"] / 100
    check(app, p["lambda_o_text"] == f"{lam:.2f}", f"λo label {p['lambda_o_text']} for {lam}")
    check(app, p["lambda_e_text"] == f"{1 - lam:.2f}", f"λe label {p['lambda_e_text']}")
    label_after = app.screenshot("lambda-after")
    check(
        app,
        changed_fraction(label_before, label_after, p["panel"]) > 0.001,
        "the face panel looks the same after the drag",
    )

    # 5. Run > Classic Preview (Ctrl+Shift+R): a new classic result on the screen.
    classic_id = moved["classic_id"]
    app.focus()
    app.key("ctrl+shift+r")
    app.wait_for(lambda s: s["classic_id"] != classic_id and not s["busy"], 120, "classic preview")
    result_layer_shows(app, "classic")

    # 6. View > Advanced: 64 px crops and one null-text iteration typed in (quick runs on
    #    the tiny model).
    state = app.state()
    app.click(*centre(state["widgets"]["menu_bar"]["View"]))
    menu = app.wait_for(lambda s: s["popup"] and "Advanced" in s["popup"]["items"], 5, "View menu")
    app.click(*centre(menu["popup"]["items"]["Advanced"]))
    tabs = app.wait_for(lambda s: "Advanced" in s["widgets"]["dock_tabs"], 10, "Advanced tab")
    app.click(*centre(tabs["widgets"]["dock_tabs"]["Advanced"]))
    for name, value in (("resolution", 64), ("nulltext_iters", 1)):
        field = scroll_params_to(app, name)
        app.click(*centre(field))
        app.key("ctrl+a")
        app.type_text(str(value))
        app.key("Tab")
        app.wait_for(
            lambda s, n=name, v=value: s["params"][f"session_{n}"] == v, 5, f"{name} = {value}"
        )
    app.screenshot("advanced")
    app.click(*centre(app.state()["widgets"]["dock_tabs"]["Faces"]))

    # 7. Only the first face restored (its tick alone; keeps the tier's time bounded): Restore
    #    (the Run button), then Esc once it is under way: it stops, nothing changes.
    for face in app.state()["faces"][1:]:
        index = str(face["index"])
        panel = scroll_list_to(app, index, "enabled_box")
        if panel["enabled"]:
            app.click(*tick_box(panel["enabled_box"]))
            app.wait_for(lambda s, i=index: not s["panels"][i]["enabled"], 5, f"face {index} off")
    # Restore is clickable once the UI has taken the preview's end (the engine's counter
    # drops on the worker thread first; the button follows in the UI thread's next turn).
    state = app.wait_for(
        lambda s: not s["busy"] and s["widgets"]["run_enabled"], 120, "the preview of one face"
    )
    app.click(*centre(state["widgets"]["run_button"]))
    app.wait_for(lambda s: s["busy"] and "/" in s["stage"], RESTORE_S, "restore progress")
    app.screenshot("restore-running")
    app.focus()
    app.key("Escape")
    state = app.wait_for(
        lambda s: not s["busy"] and s["widgets"]["run_enabled"], 60, "the cancel, Restore again"
    )
    check(app, not state["result"], "a cancelled restore left a result")
    check(app, "Cancelled" in state["status"], f"status after Esc: {state['status']!r}")

    # 8. Restore to the end: the result layer changes the faces.
    app.click(*centre(state["widgets"]["run_button"]))
    state = app.wait_for(lambda s: s["result"] and not s["busy"], RESTORE_S, "the restore")
    check(app, state["status"].startswith("Restored"), f"status {state['status']!r}")
    result_layer_shows(app, "restored")

    # 9. File > Save Result (Ctrl+S): the path typed into the dialog, Enter.
    target = tmp_path / "out" / "six-restored.png"
    target.parent.mkdir()
    app.focus()
    app.key("ctrl+s")
    app.wait_for(lambda s: s["modal"] and s["modal"]["class"] == "QFileDialog", 10, "Save dialog")
    app.key("ctrl+a")
    app.type_text(str(target))
    app.key("Return")
    state = app.wait_for(lambda s: "Saved" in s["status"], 30, "the save")
    saved = Image.open(target)
    saved.load()
    check(app, saved.size == Image.open(six_edited).size, f"saved size {saved.size}")

    # 10. Ctrl+Q: the unsaved project question is answered Discard; the process exits 0.
    app.focus()
    app.key("ctrl+q")
    state = app.wait_for(lambda s: s["modal"] or app.process.poll() is not None, 10, "quit")
    if app.process.poll() is None:
        buttons = state["modal"]["buttons"]
        discard = next((r for t, r in buttons.items() if "Discard" in t or "without" in t), None)
        check(app, discard is not None, f"no Discard button in {buttons}")
        app.click(*centre(discard), sync=False)  # the process ends with it
    try:
        code = app.process.wait(90)
    except Exception as exc:  # noqa: BLE001
        raise app.failure("did not exit after Ctrl+Q", frozen=True) from exc
    check(app, code == 0, f"exit code {code} after Ctrl+Q")
