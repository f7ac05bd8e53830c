"""The Before / After tags a compare paints over the photo, in screen pixels.

Lightroom users know "Before" and "After" from its compare views, so those are the first
words; the "before" here may be either input photo (the compare's `before` setting), so the
tag also names it: "Before · Edited" | "After · Restored". Split view tags each side of the
divider at the top of the photo; the hold view ("\\" or a press in hold mode) tags the
photo it shows. Tags are drawn in the view's foreground with the painter in viewport
pixels, so they keep one size at any zoom and stay on screen while the photo is panned.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter

PHOTO_NAMES = {"edited": "Edited", "original": "Original", "result": "Restored"}
MARGIN = 10.0  # screen pixels between a tag and the photo's edge or the divider
PAD_X, PAD_Y = 8.0, 3.0
BACKGROUND = QColor(20, 20, 22, 210)
TEXT = QColor(235, 235, 235)


def tag_text(side: str, layer: str) -> str:
    return f"{'Before' if side == 'before' else 'After'} \u00b7 {PHOTO_NAMES[layer]}"


def _font() -> QFont:
    font = QFont()
    font.setPointSizeF(9.0)
    font.setBold(True)
    return font


def compare_tags(state, photo: QRectF, divider_x: float | None) -> list[tuple[str, QRectF]]:
    """(text, viewport rectangle) of each tag to paint.

    state: `LayerStack.compare_view()`, i.e. None, ("hold", before) or ("split", before);
    photo: the photo frame in viewport pixels; divider_x: the divider's viewport x."""
    if state is None or photo.isEmpty():
        return []
    how, before = state
    metrics = QFontMetricsF(_font())
    height = metrics.height() + 2 * PAD_Y
    top = max(photo.top(), 0.0) + MARGIN

    def tag(text: str, left: float | None = None, right: float | None = None) -> QRectF:
        width = metrics.horizontalAdvance(text) + 2 * PAD_X
        x = left if left is not None else right - width
        return QRectF(x, top, width, height)

    if how == "hold":
        text = tag_text("before", before)
        return [(text, tag(text, left=max(photo.left(), 0.0) + MARGIN))]
    tags = []
    before_text, after_text = tag_text("before", before), tag_text("after", "result")
    left_tag = tag(before_text, left=max(photo.left(), 0.0) + MARGIN)
    if left_tag.right() + MARGIN <= divider_x:  # only when the pane has room for it
        tags.append((before_text, left_tag))
    right_tag = tag(after_text, right=photo.right() - MARGIN)
    right_tag.moveLeft(max(right_tag.left(), divider_x + MARGIN))
    if right_tag.right() <= photo.right() - MARGIN + 0.5:
        tags.append((after_text, right_tag))
    return tags


def paint_tags(painter: QPainter, tags: list[tuple[str, QRectF]]) -> None:
    """Paint the tags; the painter must be in viewport pixels."""
    if not tags:
        return
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setFont(_font())
    for text, rect in tags:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(BACKGROUND)
        painter.drawRoundedRect(rect, 4, 4)
        painter.setPen(TEXT)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
    painter.restore()
