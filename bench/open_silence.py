"""How long the UI thread goes silent while a photo opens: decoded on the UI thread (the
old way) against editedid_desktop.decoding.decode_photo (the decoder's own thread, the
UI thread in a local event loop).

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/open_silence.py

A 5 ms QTimer on the UI thread stamps each tick; "longest silence" is the longest gap
between ticks (or from the call's start to the first tick) while the open runs. Prints a
Markdown table. The files are made here: a 24-megapixel DNG (6000 x 4000, the size of a
Canon EOS R / Sony A7 III frame), an iPhone-sized HEIC (4032 x 3024) and a 108-megapixel
JPEG (12000 x 9000).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from editedid_desktop.decoding import decode_photo  # noqa: E402
from engine.io.images import read_rgb  # noqa: E402
from tests.fixtures.camera_files import dng_of_photo, heic_bytes  # noqa: E402


def scene(width: int, height: int) -> np.ndarray:
    """A smooth photo-like image (gradients and a few discs): compresses like a photo."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 97.0 + y / 53.0)], axis=-1)
    return (rgb * 255).astype(np.uint8)


def make_files(folder: Path) -> list[Path]:
    dng = folder / "IMG_24MP.DNG"
    dng.write_bytes(dng_of_photo(scene(6000, 4000)))
    heic = folder / "IMG_4032.HEIC"
    heic.write_bytes(heic_bytes(Image.fromarray(scene(4032, 3024))))
    jpeg = folder / "scan_108MP.jpg"
    Image.fromarray(scene(12000, 9000)).save(jpeg, quality=92)
    return [dng, heic, jpeg]


def silence(app: QApplication, opener) -> tuple[float, float]:
    """(seconds the open took, longest gap between UI-thread ticks meanwhile)."""
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    app.processEvents()
    start = time.perf_counter()
    opener()
    end = time.perf_counter()
    app.processEvents()  # a tick owed from the end of a blocked call lands here
    timer.stop()
    stamps = [start] + [t for t in ticks if start <= t <= end] + [end]
    return end - start, max(b - a for a, b in zip(stamps, stamps[1:], strict=False))


def main() -> None:
    app = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as folder:
        files = make_files(Path(folder))
        print(
            "| file | size | on the UI thread: open / longest silence "
            "| decode_photo: open / longest silence |"
        )
        print("|---|---|---|---|")
        for path in files:
            height, width = read_rgb(path).shape[:2]  # warm the file cache and the codec
            old = silence(app, lambda p=path: read_rgb(p))
            new = silence(app, lambda p=path: decode_photo(p, read_rgb))
            print(
                f"| {path.name} | {width} x {height} | {old[0]:.2f} s / {old[1]:.2f} s "
                f"| {new[0]:.2f} s / {new[1]:.3f} s |"
            )


if __name__ == "__main__":
    main()
