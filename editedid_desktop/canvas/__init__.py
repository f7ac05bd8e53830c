"""The layered photo canvas.

- `view.PhotoView`: the QGraphicsView: zoom, fit, pan, HiDPI-safe drawing, photo drops.
- `layered.LayeredCanvas`: the canvas the app uses (a `PhotoView`), its public API and
  signals; it forwards mouse presses to the tools table.
- `layers`: the photo layers and the compare (`LayerStack`), the face boxes (`FaceBoxes`).
- `overlay.MaskLayer`: the active face's masks from a mask document, coloured.
- `tools`: the tools table `DRAG_MODES` (none, brush, eraser, pan, split) and their drags.
- `items`: the graphics items (mask overlay, live stroke, face box, divider, brush outline).
- `labels`: the Before / After tags a compare paints over the photo.
"""

from .layered import LayeredCanvas
from .layers import COMPARE_MODES, IMAGE_LAYERS, LAYERS
from .tools import DRAG_MODES, TOOLS
from .view import IMAGE_SUFFIXES

__all__ = [
    "COMPARE_MODES",
    "DRAG_MODES",
    "IMAGE_LAYERS",
    "IMAGE_SUFFIXES",
    "LAYERS",
    "TOOLS",
    "LayeredCanvas",
]
