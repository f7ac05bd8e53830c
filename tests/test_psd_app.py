"""The app's Save As ▸ Photoshop document: the classic result as a layered PSD, from the
real window on the tiny model, equal to the PNG the app saves of the same result."""

from __future__ import annotations

import numpy as np
from PIL import Image
from psd_tools import PSDImage

import editedid_desktop.controllers.export as export_controller
from editedid_desktop.controllers.export import SAVE_FILTERS

PSD_FILTER = "Photoshop document (*.psd *.psb)"


def test_save_as_photoshop_document(qtbot, window, photo_pair, tmp_path, monkeypatch):
    assert PSD_FILTER in SAVE_FILTERS.split(";;")
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        window.open_photos(*photo_pair)
    qtbot.waitUntil(lambda: window.session.classic_result is not None, timeout=5000)
    answers = iter([(str(tmp_path / "client"), PSD_FILTER), (str(tmp_path / "same.png"), "")])
    monkeypatch.setattr(
        export_controller.QFileDialog, "getSaveFileName", lambda *a, **k: next(answers)
    )
    window.save_as_action.trigger()  # a bare name under the PSD filter: a .psd
    window.save_as_action.trigger()
    assert (tmp_path / "client.psd").is_file() and (tmp_path / "client.psd.json").is_file()
    psd = PSDImage.open(tmp_path / "client.psd")
    assert [layer.name for layer in psd][:3] == [
        "Edited photo", "Restored photo", "Original (aligned)"
    ]  # fmt: skip
    png = np.asarray(Image.open(tmp_path / "same.png"))
    assert np.array_equal(np.rint(psd.numpy() * 255).astype(np.uint8), png)
    mask = np.rint(psd[1].numpy("mask")[..., 0] * 255)
    blend = window.session.best_result.changed_alpha
    assert blend.max() == 1.0 and np.array_equal(mask, np.rint(blend * 255))


def test_a_bare_name_never_replaces_the_file_the_dialog_did_not_ask_about(
    qtbot, window, photo_pair, tmp_path, monkeypatch
):
    with qtbot.waitSignal(window.engine.worker.classic_ready, timeout=60000):
        window.open_photos(*photo_pair)
    qtbot.waitUntil(lambda: window.session.classic_result is not None, timeout=5000)
    taken = tmp_path / "client.psd"
    taken.write_bytes(b"the retoucher's work")
    monkeypatch.setattr(
        export_controller.QFileDialog,
        "getSaveFileName",
        lambda *a, **k: (str(tmp_path / "client"), PSD_FILTER),
    )
    window.save_as_action.trigger()
    assert taken.read_bytes() == b"the retoucher's work"
    assert window.error_box is not None and "already exists" in window.error_box.text()
    window.error_box.close()
