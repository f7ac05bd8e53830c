"""Which photo is the original? A cheap check of the roles the user gave (issue 12 D3).

An AI edit regenerates pixels: what comes out is smoother than a camera photo, whose
faces carry sensor grain (and a pasted-in face is resampled, which smooths it too). So
when the face of the photo opened as the ORIGINAL has clearly less fine grain than its
partner in the EDITED photo, the two were probably opened the wrong way round.

Grain is the noise level of the face box at the photo's own resolution: Immerkaer's
estimator (a Laplacian-difference kernel blind to flat areas and gradients), with the
median of its response instead of the mean, so the edges of eyes, hair or drawn
glasses do not count as grain. It is measured on the grey image in floating point:
rounded to 8-bit grey first, the median response of a soft photo is 1 or 2 grey levels,
and small grain differences (a portrait whose edit was lightly smoothed and rescaled,
issue 20) vanished in the rounding - the check then stayed silent on the wrong order.

Only a hint: a heavily denoised original, or an edit that adds grain, fools it; an edit
that keeps the original's pixels (glasses drawn on the photo) gives equal grain and no
warning. The analysis runs it (engine.photo.pipeline.analyze_photos ->
PhotoAnalysis.roles), so the app can warn before it shows any preview; it offers to swap
and never swaps by itself.

Margins on simulated AI edits (bench/role_check.py: grace_hopper, astronaut and the
six-person t1, bilateral or Gaussian smoothing at two strengths, the face smoothed again,
rescaled by 0.94 and cropped; the original as is or JPEG'd again): log(grain of the real
face / grain of the edit) 0.43 at the least (t1, light bilateral), against 0.07 for
glasses drawn on the photo and 0.18 for the real photo against its own JPEG re-save;
GRAIN_RATIO sits between (log 1.35 = 0.30).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

GRAIN_RATIO = 1.35  # the "original" looks edited when the edited face has this much more grain
MIN_GRAIN = 0.3  # grey levels (0-255): below this in the edited face nothing is said
MIN_BOX_PX = 24  # faces smaller than this (box side, photo pixels) are not measured

_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_SCALE = float(np.sqrt(np.pi / 2.0) / 6.0)  # Immerkaer: sigma = scale * mean |response|


def face_grain(image: np.ndarray, box: Sequence[float]) -> float | None:
    """Noise level (grey levels) inside a face box of an RGB uint8 photo; None when the
    box is too small to tell."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if min(x1 - x0, y1 - y0) < MIN_BOX_PX:
        return None
    face = np.ascontiguousarray(image[y0:y1, x0:x1, :3], dtype=np.float32)
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)  # float: no rounding to grey levels
    response = cv2.filter2D(grey, -1, _KERNEL)[1:-1, 1:-1]
    return _SCALE * float(np.median(np.abs(response)))


@dataclass(frozen=True)
class RoleCheck:
    """Grain of each measured face pair, original and edited, and the verdict."""

    grains: tuple[tuple[float, float], ...]  # (original face, edited face) per pair
    ratio: float = GRAIN_RATIO
    min_grain: float = MIN_GRAIN

    def pair_looks_swapped(self, original: float, edited: float) -> bool:
        return edited >= self.min_grain and edited >= self.ratio * original

    @property
    def looks_swapped(self) -> bool:
        """More than half of the measured pairs have the smoother face in the original."""
        votes = [self.pair_looks_swapped(o, e) for o, e in self.grains]
        return bool(votes) and sum(votes) * 2 > len(votes)

    @property
    def score(self) -> float | None:
        """How far the pairs are from the verdict: the median over the measured pairs of
        log(edited grain / original grain) - log(ratio); >= 0 leans "swapped" (None:
        nothing measured). For reports and bench/role_check.py."""
        if not self.grains:
            return None
        margins = [
            float(np.log(max(e, 1e-6) / max(o, 1e-6)) - np.log(self.ratio)) for o, e in self.grains
        ]
        return float(np.median(margins))


def check_roles(
    original: np.ndarray,
    edited: np.ndarray,
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    ratio: float = GRAIN_RATIO,
    min_grain: float = MIN_GRAIN,
) -> RoleCheck:
    """Check the roles from paired faces given as (original box, edited box)."""
    grains = []
    for original_box, edited_box in pairs:
        o, e = face_grain(original, original_box), face_grain(edited, edited_box)
        if o is not None and e is not None:
            grains.append((o, e))
    return RoleCheck(tuple(grains), ratio, min_grain)
