"""Render resources/icons/editedid.svg to editedid.png (256 px) and editedid.ico (16-256 px).

Run once when the logo changes (the outputs are committed):
    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/make_icons.py
Existing PNG/ICO files are kept unless --force is given; the SVG is never written.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
ICO_SIZES = [16, 24, 32, 48, 64, 128, 256]


def render_png(svg: Path, size: int) -> bytes:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(["make_icons"])
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data.data())


def main(argv: list[str]) -> int:
    from PIL import Image

    svg = ICONS / "editedid.svg"
    png, ico = ICONS / "editedid.png", ICONS / "editedid.ico"
    force = "--force" in argv
    if not png.exists() or force:
        png.write_bytes(render_png(svg, 256))
        print(f"wrote {png}")
    if not ico.exists() or force:
        big = Image.open(io.BytesIO(render_png(svg, 256))).convert("RGBA")
        big.save(ico, format="ICO", sizes=[(s, s) for s in ICO_SIZES])
        print(f"wrote {ico}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
