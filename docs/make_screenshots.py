"""Render the README screenshots offscreen into docs/screenshots/.

    QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py

The main window is shot at the two sizes the app is checked at (issue 12 D14): 1280x800
(a laptop; the names the README links) and 1920x1080 (names ending in -1920x1080). The
"before" shot shows the masks with their colour legend, the "after" shot the split
compare with its Before / After tags.

Uses a temporary settings file (your preferences are not touched), the sample photo of
Grace Hopper shipped with matplotlib as the original, and a copy with drawn-on glasses as
the "AI edit". The result shown is the classic preview (no diffusion model needed).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from PySide6.QtCore import QEventLoop  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
SIZES = {"": (1280, 800), "-1920x1080": (1920, 1080)}  # file name suffix: window size


def make_photos(folder: Path) -> tuple[Path, Path]:
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = Image.open(source).convert("RGB")
    original = folder / "hopper-original.png"
    image.save(original)
    edited = image.copy()
    draw = ImageDraw.Draw(edited)
    for cx in (222, 298):  # black-framed glasses over the eyes
        draw.ellipse((cx - 34, 168, cx + 34, 222), outline=(15, 15, 18), width=7)
    draw.line((256, 190, 264, 190), fill=(15, 15, 18), width=7)
    draw.line((188, 188, 160, 182), fill=(15, 15, 18), width=6)
    draw.line((332, 188, 362, 182), fill=(15, 15, 18), width=6)
    # A slightly different face, as an AI editor would return it.
    array = np.asarray(edited).astype(np.float32)
    array[230:330, 190:330] = array[230:330, 190:330] * 0.92 + np.array([18, 8, 0]) * 0.5
    edited_path = folder / "hopper-edited.png"
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(edited_path)
    return original, edited_path


def settle(app: QApplication, seconds: float = 0.3, until=None, timeout: float = 90.0) -> None:
    start = time.time()
    while True:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        elapsed = time.time() - start
        if until is None and elapsed >= seconds:
            return
        if until is not None and (until() or elapsed > timeout):
            app.processEvents()
            return
        time.sleep(0.02)


def save(widget: QWidget, name: str) -> Path:
    path = OUT / name
    widget.grab().save(str(path))
    print("wrote", path.relative_to(ROOT))
    return path


def main() -> int:
    from editedid_desktop.main_window import MainWindow
    from editedid_desktop.settings import Settings
    from editedid_desktop.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv)
    apply_theme(app)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        original, edited = make_photos(folder)
        settings = Settings.from_ini(folder / "settings.ini")
        settings.models_dir = str(folder / "models")  # no model: the first-run banner shows
        settings.face_backend = "dlib"

        window = MainWindow(settings=settings)
        window.show()
        for suffix, size in SIZES.items():
            window.resize(*size)
            settle(app, 0.5)
            save(window, f"first-run{suffix}.png")

        window.open_photos(original, edited)
        settle(app, until=lambda: window.session.classic_result is not None)
        window.dismiss_banner()
        # The drawn glasses keep the identity, so the face starts unticked ("unchanged -
        # include?"); tick it as a retoucher would, to show a restore.
        previous = window.session.classic_result
        window.face_list.panels[0].enabled_box.setChecked(True)
        settle(app, until=lambda: window.session.classic_result is not previous)
        for suffix, size in SIZES.items():
            window.resize(*size)
            window.set_compare_mode("off")
            window.layer_actions["result"].setChecked(False)
            window.layer_actions["masks"].setChecked(True)
            window.canvas.fit()
            settle(app, 0.5)
            save(window, f"main-window-before{suffix}.png")

            window.layer_actions["result"].setChecked(True)
            window.layer_actions["masks"].setChecked(False)
            window.set_compare_mode("split")
            window.canvas.fit()
            settle(app, 0.5)
            save(window, f"main-window-after{suffix}.png")
        window.resize(*SIZES[""])
        settle(app, 0.2)

        manager = window.open_model_manager()
        settle(app, 0.3)
        manager.resize(manager.minimumWidth(), manager.sizeHint().height() + 30)
        settle(app, 0.5)
        save(manager, "model-manager.png")
        manager.reject()

        try:
            from editedid_desktop.batch_dialog import BatchDialog
        except ImportError as exc:
            print("batch dialog not available:", exc)
        else:
            dialog = BatchDialog(
                params_provider=lambda: window.session.params,
                model_provider=lambda: None,
                parent=window,
            )
            dialog.show()
            settle(app, 0.5)
            save(dialog, "batch-dialog.png")
            dialog.close()

        window.session.dirty = False
        window.close()
        settle(app, 0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
