"""The main window with real widgets and the real worker thread on the tiny SD model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QKeySequence

from editedid_desktop.controllers.files import guess_roles
from editedid_desktop.face_panel import score_text
from editedid_desktop.main_window import MainWindow
from editedid_desktop.settings import Settings
from tests.ui_fixtures import FAST_PARAMS
from tests.window_fixtures import answer_box as _answer_box


def _open_and_analyze(qtbot, window, photo_pair):
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        window.open_photos(*photo_pair)
    qtbot.waitUntil(lambda: window.session.classic_result is not None, timeout=5000)


def test_menus_and_standard_shortcuts(window):
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus[:4] == ["File", "Edit", "View", "Run"]
    expected = {
        window.open_original_action: "Ctrl+O",
        window.save_action: "Ctrl+S",
        window.save_as_action: "Ctrl+Shift+S",
        window.undo_action: "Ctrl+Z",
        window.redo_action: "Ctrl+Shift+Z",
        window.fit_action: "Ctrl+0",
        window.zoom100_action: "Ctrl+1",
        window.restore_action: "Ctrl+R",
        window.cancel_action: "Esc",
        window.quit_action: "Ctrl+Q",
    }
    for action, keys in expected.items():
        assert action.shortcut() == QKeySequence(keys), action.text()
    # Nothing to run or save before photos are open.
    assert not window.restore_action.isEnabled() and not window.save_action.isEnabled()


def test_first_run_banner_without_model(qtbot, tmp_path):
    settings = Settings.from_ini(tmp_path / "s.ini")
    settings.models_dir = str(tmp_path / "empty-models")
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    assert window.banner.isVisible()
    assert "GB" in window.banner.label.text() and "license" in window.banner.label.text()
    assert "not installed" in window.model_label.text()
    window.banner.classic_button.click()
    assert not window.banner.isVisible()
    assert settings.model_banner_dismissed
    window.close()


def test_open_two_photos_shows_faces_masks_and_classic_preview(qtbot, window, photo_pair):
    assert not window.banner.isVisible()  # the tiny model folder is a valid SD 1.x folder
    _open_and_analyze(qtbot, window, photo_pair)
    assert list(window.face_list.panels) == [0]
    panel = window.face_list.panels[0]
    assert panel.enabled_box.isChecked()
    assert "different person" in panel.id_before.text()  # the edit swapped the face
    assert window.masks.has_mask(0, "face") and window.masks.has_mask(0, "element")
    assert window.canvas.has_image("result") and window.canvas.has_image("original")
    assert window.restore_action.isEnabled() and window.save_action.isEnabled()
    assert "dlib" in window.face_label.text()
    recent = [a.text() for a in window.recent_menu.actions()]
    # Open Recent remembers the pair with its roles (issue 12 D3): original -> edited
    assert f"{Path(photo_pair[0]).name}  \u2192  {Path(photo_pair[1]).name}" in recent


def test_face_panel_binds_to_session(qtbot, window, photo_pair):
    _open_and_analyze(qtbot, window, photo_pair)
    panel = window.face_list.panels[0]
    panel.lambda_o.setValue(30)  # linked: lambda_e follows
    assert window.session.settings_for(0).overlap == (0.3, 0.7)
    panel.link_button.setChecked(False)
    panel.lambda_e.setValue(40)
    assert window.session.settings_for(0).overlap == (0.3, 0.4)
    panel.words_edit.setText("hat,  scarf")
    panel.words_edit.editingFinished.emit()
    assert window.session.word_groups() == {("hat", "scarf"): [0]}
    window.session.update_face(0, enabled=False)  # session -> widget
    assert not panel.enabled_box.isChecked()
    assert window.session.enabled_faces() == []
    assert window.session.dirty


def test_params_panel_two_way_and_inline_errors(window):
    panel = window.params_panel
    panel.widgets["steps"].setValue(8)
    assert window.session.params.steps == 8
    panel.widgets["steps"].setValue(3)  # dpm_range (4, 6) no longer fits
    assert "dpm_range" in panel.error and panel.error_label.isVisibleTo(panel)
    assert window.session.params.steps == 8  # the invalid combination never applied
    panel.widgets["dpm_range"][0].setValue(1)
    panel.widgets["dpm_range"][1].setValue(3)
    assert window.session.params.steps == 3 and window.session.params.dpm_range == (1, 3)
    assert panel.error == ""
    window.session.params = FAST_PARAMS  # session -> widgets
    assert panel.widgets["nulltext_iters"].value() == 1
    assert panel.widgets["resolution"].value() == 64
    panel.reset_button.click()
    assert window.session.params.steps == 6
    assert "Diffusion steps" in panel.widgets["steps"].toolTip()


def test_restore_to_completion_shows_result(qtbot, window, photo_pair):
    _open_and_analyze(qtbot, window, photo_pair)
    window.session.params = FAST_PARAMS
    progress, previews, beats = [], [], []
    window.engine.worker.progress.connect(lambda *a: progress.append(a))
    window.engine.worker.preview.connect(lambda image, box: previews.append(box))
    heartbeat = QTimer()
    heartbeat.setInterval(20)
    heartbeat.timeout.connect(lambda: beats.append(1))
    heartbeat.start()
    window.layer_actions["result"].setChecked(False)  # View > Show Result off: a result shows
    with qtbot.waitSignal(window.engine.worker.finished, timeout=180000):
        window.restore_action.trigger()
        assert window.cancel_button.isVisible()
        assert not window.restore_action.isEnabled()
    heartbeat.stop()
    qtbot.waitUntil(lambda: not window.cancel_button.isVisible(), timeout=5000)
    # the element-mask pre-pass reports its own stage (no preview); then three stages
    steps = [p for p in progress if p[2] > 0 and p[0] != "element masks"]
    assert len(steps) == 3 * FAST_PARAMS.steps  # inversion, null-text, entanglement
    assert len(previews) == len(steps)
    assert [p[:3] for p in progress if p[0] == "element masks"][-1][1:] == (1, 1)
    assert len(beats) >= 3
    result = window.session.result
    assert result is not None and result.mode == "diffusion"
    assert window.canvas.has_image("result") and window.canvas.layer_visible("result")
    assert window.layer_actions["result"].isChecked()  # the menu says so (run.restored)
    # the panel shows the identity score of THIS result (the verdict depends on the tiny
    # random model, the text must be the one for its score)
    after = result.faces[0].id_after
    assert after is not None
    assert window.face_list.panels[0].id_after.text() == score_text(after)
    assert "loaded" in window.model_label.text()
    assert window.error_box is None


def test_cancel_mid_run_leaves_the_app_usable(qtbot, window, photo_pair):
    _open_and_analyze(qtbot, window, photo_pair)
    window.session.params = FAST_PARAMS.replace(seed=5)

    def press_escape(stage, step, total):
        if total > 0 and step >= 1:
            window.cancel_action.trigger()

    window.engine.worker.progress.connect(press_escape)
    with qtbot.waitSignal(window.engine.worker.cancelled, timeout=180000):
        window.runner.run_restore()
    window.engine.worker.progress.disconnect(press_escape)
    # `busy` drops on the worker thread as the job ends; the window hears it through the
    # queued busy_changed, which may come after `cancelled`: wait for what the user sees
    qtbot.waitUntil(lambda: not window.engine.busy, timeout=5000)
    qtbot.waitUntil(window.restore_action.isEnabled, timeout=5000)
    assert window.session.result is None
    assert "Cancelled" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.engine.worker.finished, timeout=180000):
        window.runner.run_restore()


def test_save_result_and_project_round_trip(qtbot, window, photo_pair, tmp_path):
    _open_and_analyze(qtbot, window, photo_pair)
    window.session.update_face(0, element_words="hat", overlap=(0.25, 0.75))
    window.session.params = FAST_PARAMS
    painted = window.masks.mask(0, "face")
    painted[10:20, 10:20] = 255
    window.faces.apply_saved_mask(0, "face", painted)
    assert window.masks.is_edited(0, "face")

    out = window.exporter.write_result(tmp_path / "out.png")
    assert out is not None and out.is_file() and (tmp_path / "out.png.json").is_file()
    assert window.exporter.write_result(photo_pair[1], overwrite=True) is None  # never an input
    window.error_box.close()

    project = window.projects.save_to(tmp_path / "job.editedid")
    assert project is not None and not window.session.dirty

    window.session.clear()
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        assert window.open_project(project)
    s = window.session
    assert s.params == FAST_PARAMS
    assert s.settings_for(0).element_words == "hat"
    assert s.settings_for(0).overlap == (0.25, 0.75)
    assert window.masks.is_edited(0, "face")
    np.testing.assert_array_equal(window.masks.mask(0, "face"), painted)
    assert not window.masks.is_edited(0, "element")
    assert not s.dirty


def test_drop_two_photos_guesses_roles_or_asks(qtbot, window, photo_pair, monkeypatch):
    original, edited = photo_pair
    assert guess_roles([edited, original]) == (original, edited)
    asked = []
    monkeypatch.setattr(
        window.files, "ask_which_is_original", lambda a, b: asked.append((a, b)) or (b, a)
    )
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        window.files.open_dropped([str(edited), str(original)])
    assert asked == []  # the file names said which is which
    assert window.session.original_path == original

    plain_a = original.with_name("a.png")
    plain_b = edited.with_name("b.png")
    plain_a.write_bytes(original.read_bytes())
    plain_b.write_bytes(edited.read_bytes())
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        window.files.open_dropped([str(plain_a), str(plain_b)])
    assert asked == [(plain_a, plain_b)]
    assert window.session.original_path == plain_b


def test_bad_photo_shows_a_dialog_not_a_crash(window, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    assert not window.open_photo("edited", broken)
    assert window.error_box is not None and "broken.jpg" in window.error_box.text()
    window.error_box.close()


def test_model_manager_checks_without_loading(qtbot, window, tiny_sd_dir, tmp_path):
    dialog = window.open_model_manager()
    qtbot.waitExposed(dialog)
    dialog.source_edit.setText(str(tiny_sd_dir))
    assert "Stable Diffusion 1.x folder" in dialog.check_label.text()
    assert not dialog.download_button.isEnabled()
    dialog.kind_combo.setCurrentIndex(0)
    dialog.models_dir_edit.setText(str(tmp_path / "none"))
    dialog.source_edit.setText("CompVis/stable-diffusion-v1-4")
    assert "not downloaded" in dialog.check_label.text()
    assert dialog.download_button.isEnabled()
    dialog.device_combo.setCurrentText("cpu")
    dialog.low_vram_box.setChecked(True)
    dialog.accept()
    assert window.settings.low_vram and window.settings.model_source.startswith("CompVis")
    assert window.banner.isVisible()  # that model is not installed in this folder


# --- saving: the CLI's no-overwrite rules, location, messages (issue 11) ----------------
def _save_as_via_dialog(window, monkeypatch, path):
    """File ▸ Save Result As, the file dialog answering `path` (it asked about replacing)."""
    import editedid_desktop.controllers.export as export_controller

    monkeypatch.setattr(
        export_controller.QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), "")
    )
    window.save_as_action.trigger()


@pytest.mark.parametrize("image_exists", [False, True])
def test_save_never_replaces_a_foreign_json_beside_the_result(
    qtbot, window, photo_pair, tmp_path, monkeypatch, image_exists
):
    from engine.io.export import SIDECAR_MARKER, read_sidecar

    _open_and_analyze(qtbot, window, photo_pair)
    out = tmp_path / "client.png"
    notes = tmp_path / "client.png.json"
    notes.write_text("the client's own notes")
    if image_exists:
        out.write_bytes(b"an older file the dialog asked to replace")
    before = out.read_bytes() if image_exists else None
    _save_as_via_dialog(window, monkeypatch, out)
    assert notes.read_text() == "the client's own notes"
    assert (out.read_bytes() if out.exists() else None) == before
    assert window.error_box is not None and str(notes) in window.error_box.text()
    assert window.exporter.result_path is None
    window.error_box.close()

    # elsewhere: the result and its sidecar of ours, as one unit; Save replaces both
    good = tmp_path / "good.png"
    _save_as_via_dialog(window, monkeypatch, good)
    data = read_sidecar(good)
    assert window.error_box is None and data is not None and data[SIDECAR_MARKER] == 1
    assert len(data["inputs"]["edited"]["sha256"]) == 64
    window.save_action.trigger()
    assert window.error_box is None and window.exporter.result_path == good
    window.open_photo("edited", photo_pair[1], analyze=False)  # another document: Save asks
    assert window.exporter.result_path is None  # (files.photo_opened)


def test_save_result_drops_the_location_unless_the_setting_keeps_it(
    qtbot, window, photo_pair, tmp_path
):
    from PIL import Image

    original, edited = photo_pair
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0)})
    edited_gps = tmp_path / "hopper-edited.jpg"
    Image.open(edited).save(edited_gps, quality=95, exif=exif.tobytes())
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        window.open_photos(original, edited_gps)
    qtbot.waitUntil(lambda: window.session.classic_result is not None, timeout=5000)
    assert window.settings.strip_location  # the default
    for name, strip, expected in (("stripped", True, None), ("kept", False, (52.0, 31.0, 12.0))):
        window.settings.strip_location = strip
        out = window.exporter.write_result(tmp_path / f"{name}.jpg")
        assert out is not None, window.error_box and window.error_box.text()
        with Image.open(out) as image:
            assert image.getexif().get_ifd(0x8825).get(2) == expected, name
            assert image.getexif().get(0x010F) == "Canon"


def test_settings_dialog_location_checkbox(qtbot, settings):
    from editedid_desktop.settings_dialog import SettingsDialog

    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert dialog.location_box.isChecked()
    dialog.location_box.setChecked(False)
    dialog.accept()
    assert settings.strip_location is False
    assert Settings.from_ini(Path(settings.store.fileName())).strip_location is False


# --- malformed project files: a message naming the file, never an escaped exception --------
def _malformed_projects(folder: Path) -> dict[str, Path]:
    import json

    folder.mkdir()
    (folder / "loop").symlink_to(folder / "loop")
    base = {"format": "editedid-project", "version": 1}

    def masks(name):
        return {**base, "masks": {"0": {"face": {"file": name}}}}

    documents = {
        "not-json": b"{ this is not json",
        "latin-1": '{"format": "editedid-project", "x": "\xe9"}'.encode("latin-1"),
        "a-list": b"[1, 2, 3]",
        "deep": b"[" * 5000 + b"]" * 5000,
        "newer": {**base, "version": 99},
        "params-nan": {**base, "params": {"guidance": float("nan")}},
        "faces-wrong": {**base, "faces": {"0": {"overlap": "half"}}},
        "masks-list": {**base, "masks": [1, 2]},
        "mask-outside": masks("../../etc/passwd"),
        "mask-too-long": masks("x" * 5000),
        "mask-nul": masks("a\x00b.png"),
        "mask-loop": masks("loop/x.png"),
        "input-loop": {**base, "inputs": {"original": {"relative": "loop"}}},
        "input-nul": {**base, "inputs": {"original": {"absolute": "/tmp/a\x00b.png"}}},
    }
    paths = {}
    for name, content in documents.items():
        path = folder / f"{name}.editedid"
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
        paths[name] = path
    (folder / "a-folder.editedid").mkdir()
    paths["a-folder"] = folder / "a-folder.editedid"
    return paths


def _open_recent(window, path: Path) -> None:
    """File ▸ Open Recent ▸ path: the slot runs from Qt's signal, as a user's click."""
    window.settings.add_recent_file(path)
    window.files.fill_recent_menu()
    (action,) = [a for a in window.recent_menu.actions() if a.toolTip() == str(path.resolve())]
    action.trigger()


def test_malformed_projects_show_a_message_naming_the_file(window, tmp_path):
    before = window.session.project_path
    for name, path in _malformed_projects(tmp_path / "projects").items():
        window.error_box = None
        _open_recent(window, path)  # pytest-qt fails the test on an exception in the slot
        box = window.error_box
        assert box is not None, name
        assert box.windowTitle() == "Cannot open the project", name
        assert str(path.resolve()) in box.text() or str(path) in box.text(), (name, box.text())
        assert window.session.project_path == before, name
        box.close()


@pytest.mark.parametrize(
    "error",
    [OSError(5, "Input/output error"), "ModelError", "Cancelled"],
)
def test_open_project_slot_catches_every_error_of_ours(window, tmp_path, monkeypatch, error):
    import engine.errors
    from editedid_desktop.controllers import projects

    if isinstance(error, str):
        error = getattr(engine.errors, error)("the disk went away")
    path = tmp_path / "job.editedid"
    path.write_text("{}")

    def fail(_path):
        raise error

    monkeypatch.setattr(projects, "load_project", fail)
    _open_recent(window, path)
    assert window.error_box is not None and str(path.resolve()) in window.error_box.text()
    window.error_box.close()


def _type_into(qtbot, box, text: str, *, enter: bool = True) -> None:
    """Select a spin box's text, type, and (optionally) press Enter, as a user does."""
    from PySide6.QtCore import Qt

    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), text)
    if enter:
        qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)


def test_invalid_advanced_values_disable_restore_and_runs_use_what_is_shown(
    qtbot, window, photo_pair
):
    """D5 (issue 12): Restore is off with the reason while a value is invalid; the run
    uses exactly the panel's values (also a valid change typed at the same time, also a
    value typed without Enter) and the sidecar records them."""
    _open_and_analyze(qtbot, window, photo_pair)
    window.session.params = FAST_PARAMS  # steps 3, solver range 2-3
    panel = window.params_panel
    assert window.restore_action.isEnabled() and window.run_button.isEnabled()
    _type_into(qtbot, panel.widgets["dpm_range"][1], "5")  # solver range past the steps
    _type_into(qtbot, panel.widgets["guidance"], "9")  # a valid change at the same time
    assert "dpm_range" in panel.error
    assert not window.restore_action.isEnabled() and not window.run_button.isEnabled()
    assert "dpm_range" in window.run_button.toolTip()
    assert "Advanced" in window.restore_action.toolTip()
    window.update_actions()  # e.g. a classic preview finishing: Restore stays off
    assert not window.restore_action.isEnabled() and not window.run_button.isEnabled()
    window.runner.run_restore()  # Ctrl+R on a stale enabled state still refuses
    assert not window.engine.busy and window.engine.pending("restore") == 0
    assert "Advanced" in window.statusBar().currentMessage()

    _type_into(qtbot, panel.widgets["dpm_range"][1], "3")  # fixed: both changes apply
    assert panel.error == ""
    assert window.restore_action.isEnabled() and window.run_button.isEnabled()
    assert window.session.params.guidance == 9.0
    _type_into(qtbot, panel.widgets["seed"], "77", enter=False)  # typed, not entered
    with qtbot.waitSignal(window.engine.worker.finished, timeout=180000):
        window.restore_action.trigger()
    ran = window.session.result.sidecar["params"]
    assert ran["guidance"] == 9.0 and ran["seed"] == 77
    assert tuple(ran["dpm_range"]) == (2, 3) and ran["steps"] == 3


def test_unchanged_and_implausible_faces_are_flagged_and_left_unticked(qtbot, window, tmp_path):
    """D1/D2/D15 (issue 12): on the astronaut (enlarged, so dlib also finds a "face" on the
    mission patch) both faces are left unticked: the patch as "not a face?", the real face
    as "unchanged"; faces are numbered left to right from 1; ticking one includes it."""
    import cv2
    from PIL import Image

    from tests.helpers import sample_photo

    image = np.asarray(Image.open(sample_photo("astronaut")).convert("RGB"))
    big = cv2.resize(image, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    original, edited = tmp_path / "astro-original.png", tmp_path / "astro-edited.png"
    Image.fromarray(big).save(original)
    Image.fromarray(np.clip(big.astype(int) + 10, 0, 255).astype(np.uint8)).save(edited)
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        window.open_photos(original, edited)
    qtbot.waitUntil(lambda: len(window.face_list.panels) == 2, timeout=5000)
    panels = window.face_list.panels
    faces = window.session.faces
    assert [f.box[0] for f in faces] == sorted(f.box[0] for f in faces)  # left to right
    patch, person = panels[0], panels[1]
    assert patch.enabled_box.text() == "Face 1" and person.enabled_box.text() == "Face 2"
    assert not patch.enabled_box.isChecked() and not person.enabled_box.isChecked()
    assert not patch.verdict.isHidden() and "not a face?" in patch.verdict.text()
    assert "detector score" in patch.verdict.toolTip()
    assert "unchanged" in person.verdict.text() and "include?" in person.verdict.text()
    assert window.session.enabled_faces() == []
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QDockWidget

    dock = window.face_list
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    if dock is not None:  # the Faces dock may be a tab behind another
        dock.show()
        dock.raise_()
    qtbot.waitUntil(person.enabled_box.isVisible, timeout=5000)
    qtbot.mouseClick(person.enabled_box, Qt.MouseButton.LeftButton)
    assert person.enabled_box.isChecked() and window.session.enabled_faces() == [1]


def _click_away_from_canvas(qtbot, window):
    """A click on the tool bar's opacity slider, as a user does between strokes."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    qtbot.mouseClick(window.result_opacity, Qt.MouseButton.LeftButton)
    window.result_opacity.setFocus()
    assert QApplication.focusWidget() is window.result_opacity
    return window.result_opacity


def test_x_swaps_the_mask_target_anywhere_in_the_window(qtbot, window):
    """D6 (issue 12): X (in the README) swaps face/element mask; it is a window shortcut."""
    from PySide6.QtCore import Qt

    focused = _click_away_from_canvas(qtbot, window)
    assert window.canvas.active_mask()[1] == "face"
    qtbot.keyClick(focused, Qt.Key.Key_X)
    assert window.canvas.active_mask()[1] == "element"
    assert window.mask_toolbar.element_target_action.isChecked()
    qtbot.keyClick(window.canvas, Qt.Key.Key_X)
    assert window.canvas.active_mask()[1] == "face"


def test_canvas_keys_work_after_a_click_elsewhere_but_never_while_typing(qtbot, window):
    """D7 (issue 12): [ ] Shift+[ Space and \\ are window shortcuts that leave text alone."""
    from PySide6.QtCore import Qt

    canvas = window.canvas
    focused = _click_away_from_canvas(qtbot, window)
    size = canvas.brush_size
    qtbot.keyClick(focused, Qt.Key.Key_BracketRight)
    assert canvas.brush_size > size
    qtbot.keyClick(focused, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(focused, Qt.Key.Key_BracketLeft)
    assert canvas.brush_size < size
    hardness = canvas.brush_hardness
    qtbot.keyClick(focused, Qt.Key.Key_BraceLeft, Qt.KeyboardModifier.ShiftModifier)
    assert canvas.brush_hardness == pytest.approx(max(0.0, hardness - 0.25))
    qtbot.keyPress(focused, Qt.Key.Key_Space)
    assert canvas.is_space_pan()
    assert canvas.viewport().cursor().shape() == Qt.CursorShape.OpenHandCursor
    qtbot.keyRelease(focused, Qt.Key.Key_Space)
    assert not canvas.is_space_pan()
    qtbot.keyPress(focused, Qt.Key.Key_Backslash)
    assert canvas.is_holding_compare()
    qtbot.keyRelease(focused, Qt.Key.Key_Backslash)
    assert not canvas.is_holding_compare()

    # Typing in a spin box of the Advanced panel: the keys type, the canvas keeps still.
    window.params_dock.show()
    window.params_dock.raise_()
    box = window.params_panel.widgets["seed"]
    qtbot.waitUntil(box.isVisible, timeout=5000)
    box.setFocus()
    box.lineEdit().selectAll()
    size = canvas.brush_size
    qtbot.keyClicks(box.lineEdit(), "1]2[")
    qtbot.keyPress(box.lineEdit(), Qt.Key.Key_Space)
    assert canvas.brush_size == size and not canvas.is_space_pan()
    qtbot.keyRelease(box.lineEdit(), Qt.Key.Key_Space)
    assert box.lineEdit().text().startswith("12")


def test_docks_are_tabs_and_the_canvas_gets_the_width_at_1280x800(qtbot, window):
    """D14 (issue 12): Faces and Advanced share one tabbed column, Advanced starts closed;
    D12: the mask colour legend is in the window."""
    from PySide6.QtCore import Qt

    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.width() == 1280, timeout=5000)
    qtbot.wait(50)
    assert window.params_dock.isHidden() and window.faces_dock.isVisible()
    assert window.canvas.width() >= 0.65 * window.width()
    legend = window.mask_toolbar.legend
    assert legend.isVisible()
    assert all(word in legend.text() for word in ("face", "element", "both"))
    # View ▸ Advanced opens it as a tab beside Faces: the canvas keeps its width.
    window.params_dock.toggleViewAction().trigger()
    qtbot.waitUntil(window.params_dock.isVisible, timeout=5000)
    assert window.params_dock in window.tabifiedDockWidgets(window.faces_dock)
    assert window.dockWidgetArea(window.params_dock) == Qt.DockWidgetArea.RightDockWidgetArea
    assert window.canvas.width() >= 0.65 * window.width()


def test_dropping_a_new_pair_over_painted_masks_asks_first(qtbot, window, photo_pair, tmp_path):
    """D9 (issue 12): painted masks are never thrown away without asking; Cancel keeps
    everything, Discard opens the new pair."""
    from PySide6.QtWidgets import QMessageBox

    _open_and_analyze(qtbot, window, photo_pair)
    face = window.session.faces[0].index
    window.masks.paint(face, "face", [(5.0, 5.0), (30.0, 5.0)], 6.0)  # a brush stroke
    painted = window.masks.mask(face, "face")
    assert window.masks.is_edited(face, "face")
    other_a, other_b = tmp_path / "a-original.png", tmp_path / "b-edited.png"
    other_a.write_bytes(photo_pair[0].read_bytes())
    other_b.write_bytes(photo_pair[1].read_bytes())

    answers: list = []
    _answer_box(qtbot, "confirmReplaceBox", QMessageBox.StandardButton.Cancel, answers)
    window.files.open_dropped([str(other_a), str(other_b)])
    assert answers and "masks" in answers[0]
    assert window.session.original_path == photo_pair[0]  # nothing changed
    assert np.array_equal(window.masks.mask(face, "face"), painted)

    answers.clear()
    _answer_box(qtbot, "confirmReplaceBox", QMessageBox.StandardButton.Discard, answers)
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        window.files.open_dropped([str(other_a), str(other_b)])
    assert answers
    assert window.session.original_path == other_a
    assert not window.masks.user_masks()


def test_open_recent_reopens_a_pair_in_its_roles(qtbot, window, photo_pair, tmp_path):
    """D3 (issue 12): Open Recent keeps which photo was the original."""
    plain_original, plain_edited = tmp_path / "b.png", tmp_path / "a.png"  # names say nothing
    plain_original.write_bytes(photo_pair[0].read_bytes())
    plain_edited.write_bytes(photo_pair[1].read_bytes())
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        window.open_photos(plain_original, plain_edited)
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        window.open_photos(*photo_pair)
    assert window.settings.recent_pairs[1] == (
        str(plain_original.resolve()),
        str(plain_edited.resolve()),
    )
    (action,) = [a for a in window.recent_menu.actions() if a.text().startswith("b.png")]
    assert "Original: " + str(plain_original.resolve()) in action.toolTip()
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        action.trigger()
    assert window.session.original_path == plain_original.resolve()
    assert window.session.edited_path == plain_edited.resolve()
    reopened = Settings.from_ini(Path(window.settings.store.fileName()))
    assert reopened.recent_pairs[0] == (str(plain_original.resolve()), str(plain_edited.resolve()))


def test_model_messages_speak_to_app_users_not_the_command_line(qtbot, window, tmp_path):
    """D13 (issue 12): no command-line flags or editedid-cli commands in the app's words."""
    from engine.models.loading import _not_downloaded_message

    dialog = window.open_model_manager()
    qtbot.waitExposed(dialog)
    dialog.face_dir_edit.setText(str(tmp_path / "no-face-models"))
    dialog.face_backend_combo.setCurrentText("insightface")
    dialog._update_face_status()
    assert "editedid-cli" not in dialog.face_status.text()
    dialog.reject()
    window.runner.on_failed("No model", _not_downloaded_message("x/y", tmp_path))
    text = window.error_box.text() + window.error_box.informativeText()
    assert "--allow-download" not in text and "Model Manager" in text
    window.error_box.close()


def test_open_recent_tells_apart_pairs_with_the_same_file_names(window, tmp_path):
    shoots = [tmp_path / "shoot-a", tmp_path / "shoot-b"]
    for shoot in shoots:
        shoot.mkdir()
        for name in ("IMG_0001.jpg", "IMG_0001-ai.png"):
            (shoot / name).touch()  # there: not listed as missing
        window.settings.add_recent_pair(shoot / "IMG_0001.jpg", shoot / "IMG_0001-ai.png")
    for name in ("x.jpg", "y.jpg"):
        (tmp_path / name).touch()
    window.settings.add_recent_pair(tmp_path / "x.jpg", tmp_path / "y.jpg")
    window.files.fill_recent_menu()
    labels = [a.text() for a in window.recent_menu.actions() if a.text()][:3]
    assert labels[0] == "x.jpg  →  y.jpg"  # unique names need no folder
    assert len(set(labels)) == 3
    assert all(label.startswith("IMG_0001.jpg  →  IMG_0001-ai.png  (in ") for label in labels[1:])
    assert {label.rsplit("/", 1)[-1] for label in labels[1:]} == {"shoot-a)", "shoot-b)"}


def test_a_pairing_change_is_one_undoable_command(qtbot, window, photo_pair):
    """Issue 20 item 2: choosing another original face is a command on Edit ▸ Undo; undo
    and redo re-run the analysis, and the command outlives the analysis it started."""
    from PySide6.QtCore import Qt

    from editedid_desktop.model.session import PAIRING_AUTO

    _open_and_analyze(qtbot, window, photo_pair)
    assert not window.undo_action.isEnabled()
    combo = window.face_list.panels[0].pairing_combo
    assert combo.currentText() == "Auto (face 1)"
    combo.setFocus()
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        qtbot.keyClick(combo, Qt.Key.Key_End)  # the last item: "None (keep as edited)"
    qtbot.waitUntil(lambda: window.session.faces[0].original_index is None, timeout=5000)
    assert window.session.settings_for(0).pairing is None
    assert window.undo_action.isEnabled()  # still there after the re-analysis
    assert "Pair face 1 with None" in window.undo_action.text()

    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        window.undo_action.trigger()
    qtbot.waitUntil(lambda: window.session.faces[0].original_index == 0, timeout=5000)
    assert window.session.settings_for(0).pairing == PAIRING_AUTO
    assert window.face_list.panels[0].pairing_combo.currentText() == "Auto (face 1)"
    assert window.redo_action.isEnabled() and not window.undo_action.isEnabled()

    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        window.redo_action.trigger()
    qtbot.waitUntil(lambda: window.session.faces[0].original_index is None, timeout=5000)
    assert window.session.settings_for(0).pairing is None
    assert window.undo_action.isEnabled() and not window.redo_action.isEnabled()


def _copy_pair(photo_pair, folder: Path, stem: str) -> tuple[Path, Path]:
    folder.mkdir(exist_ok=True)
    original, edited = folder / f"{stem}-original.png", folder / f"{stem}-edited.png"
    original.write_bytes(photo_pair[0].read_bytes())
    edited.write_bytes(photo_pair[1].read_bytes())
    return original, edited


def test_the_title_follows_the_document_after_a_project(qtbot, window, photo_pair, tmp_path):
    """Issue 20: the title kept "partial.editedid*" after other photos were opened."""
    _open_and_analyze(qtbot, window, photo_pair)
    assert window.projects.save_to(tmp_path / "partial.editedid") is not None
    window.session.update_face(0, element_words="hat")  # an unsaved change of the project
    assert "partial.editedid" in window.windowTitle() and window.isWindowModified()

    other = _copy_pair(photo_pair, tmp_path / "other", "b")
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        assert window.open_photos(*other)
    assert window.session.project_path is None
    assert "partial" not in window.windowTitle() and "b-edited.png" in window.windowTitle()
    assert not window.isWindowModified()  # two photos just opened: nothing unsaved


def test_open_recent_lists_pairs_and_projects_never_half_pairs(qtbot, window, photo_pair, tmp_path):
    """Issue 20: Open Recent kept half-pairs (a photo whose partner was never opened)."""

    def entries():
        return [a for a in window.recent_menu.actions() if a.text() and not a.isSeparator()]

    window.settings.add_recent_file(tmp_path / "single-from-an-old-version.png")
    original, edited = _copy_pair(photo_pair, tmp_path / "shoot", "c")
    window.settings.add_recent_file(original)  # an older version's half-pair of this photo
    window.open_photo("original", original)  # one photo alone
    window.files.fill_recent_menu()
    assert [a.text() for a in entries()] == []  # neither the old nor the new half-pair
    with qtbot.waitSignal(window.engine.worker.analyzed, timeout=60000):
        window.open_photo("edited", edited)  # now it is a pair
    texts = [a.text() for a in entries()]
    assert texts == ["c-original.png  \u2192  c-edited.png", "Clear Recent Files"]
    assert str(original.resolve()) not in window.settings.recent_files

    edited.unlink()  # a pair whose photo is gone: shown as missing, not openable
    window.files.fill_recent_menu()
    (pair,) = [a for a in entries() if "\u2192" in a.text()]
    assert pair.text().endswith("(missing)") and not pair.isEnabled()
    assert str(edited.resolve()) in pair.toolTip()


def test_help_lists_every_keyboard_shortcut_the_window_has(qtbot, window):
    """Issue 20: Help had no keyboard reference. The list is read from the window's actions,
    so every action with a shortcut is in it, with its keys."""
    from PySide6.QtGui import QAction

    help_menu = window.menuBar().actions()[-1].menu()
    assert window.shortcuts_action in help_menu.actions()
    window.shortcuts_action.trigger()
    dialog = window.shortcuts_dialog
    qtbot.waitExposed(dialog)
    shown = dialog.rows()
    keys_shown = {(name, keys) for _, name, keys in shown}
    native = QKeySequence.SequenceFormat.NativeText
    with_keys = [a for a in window.findChildren(QAction) if not a.shortcut().isEmpty()]
    assert len(with_keys) >= 30
    for action in with_keys:
        keys = ", ".join(s.toString(native) for s in action.shortcuts())
        assert any(k == keys for _, k in keys_shown), (action.objectName(), keys)
    groups = {group for group, _, _ in shown}
    assert {"File", "Edit", "View", "Run", "Help", "Mask tools", "Canvas"} <= groups
    assert ("Run", "Restore (diffusion)", "Ctrl+R") in shown
    assert ("Edit", "Undo", "Ctrl+Z") in shown
    assert ("Mask tools", "Brush", "B") in shown
    assert ("Canvas", "Larger Brush", "]") in shown
    assert len(shown) == len({(n, k) for _, n, k in shown})  # each action once


def test_save_says_it_writes_a_sidecar_and_can_leave_the_folders_out(
    qtbot, window, photo_pair, tmp_path, monkeypatch
):
    """Issue 20: every Save wrote a .json with the client's absolute paths beside the
    result without saying so. The dialog and the status line name it; Settings can keep
    the folders out of it."""
    import json

    from editedid_desktop.controllers import export as export_controller
    from editedid_desktop.settings_dialog import SettingsDialog

    _open_and_analyze(qtbot, window, photo_pair)
    target = tmp_path / "delivery" / "client.png"
    target.parent.mkdir()
    captions = []

    def save_dialog(parent, caption, *args, **kwargs):
        captions.append(caption)
        return str(target), ""

    monkeypatch.setattr(export_controller.QFileDialog, "getSaveFileName", save_dialog)
    window.exporter.save_result_as()
    assert ".json" in captions[0]
    message = window.statusBar().currentMessage()
    assert "client.png.json" in message and "full paths" in message
    side = target.parent / "client.png.json"
    data = json.loads(side.read_text())
    assert data["inputs"]["original"]["path"] == str(photo_pair[0].resolve())  # the default

    dialog = SettingsDialog(window.settings)
    qtbot.addWidget(dialog)
    dialog.sidecar_combo.setCurrentIndex(dialog.sidecar_combo.findData("names"))
    dialog.accept()
    assert window.settings.sidecar_paths == "names"
    window.exporter.save_result()  # Save: the same file again
    text = side.read_text()
    data = json.loads(text)
    assert data["inputs"]["original"]["path"] == photo_pair[0].name
    assert data["inputs"]["edited"]["path"] == photo_pair[1].name
    assert data["output"] == "client.png" and len(data["inputs"]["edited"]["sha256"]) == 64
    assert str(photo_pair[0].parent) not in text and str(target.parent) not in text
    assert "file names" in window.statusBar().currentMessage()
