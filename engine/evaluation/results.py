"""The records an evaluation produces: `FaceEval` (one paired face, identity before and
after), `ImageEval` (one restored photo: its faces, CLIP-S, ImageReward, PSNR/SSIM outside
the faces) and `EvalReport` (every row, the per-variant means and the identity model's
label), with the label of an identity model (`id_model`, `id_label`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.faces.identity import IdentityScore
from engine.faces.types import FaceAnalyzer

PSNR_CAP_DB = 100.0


# --- data -------------------------------------------------------------------------------
@dataclass
class FaceEval:
    name: str
    variant: str
    face: int  # edited-photo face index
    original_face: int | None
    id_before: IdentityScore | None
    id_after: IdentityScore | None


@dataclass
class ImageEval:
    name: str
    variant: str
    original: str = ""
    edited: str = ""
    restored: str = ""
    status: str = "ok"
    error: str = ""
    faces: list[FaceEval] = field(default_factory=list)
    clip_edited: float | None = None
    clip_restored: float | None = None
    clip_region: str = ""
    reward_edited: float | None = None
    reward_restored: float | None = None
    psnr_outside: float | None = None
    ssim_outside: float | None = None
    outside_fraction: float | None = None
    seconds: float = 0.0

    def _values(self, which: str) -> list[float]:
        return [getattr(f, which).value for f in self.faces if getattr(f, which) is not None]

    @property
    def id_before(self) -> float | None:
        return _mean(self._values("id_before"))

    @property
    def id_after(self) -> float | None:
        return _mean(self._values("id_after"))


@dataclass
class EvalReport:
    folder: str
    images: list[ImageEval]
    problems: list[str] = field(default_factory=list)
    id_model: str = ""
    id_metric: str = ""
    id_threshold: float | None = None
    clip_model: str | None = None
    clip_text: str | None = None
    clip_note: str = ""
    reward_note: str = ""

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(im.variant for im in self.images))

    def faces(self) -> list[FaceEval]:
        return [f for im in self.images for f in im.faces]

    def means(self) -> dict[str, dict[str, Any]]:
        """Per variant: means over the sets that were scored (errors left out)."""
        out = {}
        for variant in self.variants:
            rows = [im for im in self.images if im.variant == variant and im.status == "ok"]
            faces = [f for im in rows for f in im.faces]
            before = [f.id_before for f in faces if f.id_before is not None]
            after = [f.id_after for f in faces if f.id_after is not None]
            out[variant] = {
                "sets": len(rows),
                "errors": sum(
                    1 for im in self.images if im.variant == variant and im.status != "ok"
                ),
                "faces": len(faces),
                "id_before": _mean([s.value for s in before]),
                "id_after": _mean([s.value for s in after]),
                "same_before": sum(s.same_person for s in before),
                "same_after": sum(s.same_person for s in after),
                "clip_edited": _mean([im.clip_edited for im in rows]),
                "clip_restored": _mean([im.clip_restored for im in rows]),
                "reward_edited": _mean([im.reward_edited for im in rows]),
                "reward_restored": _mean([im.reward_restored for im in rows]),
                "psnr_outside": _mean(
                    [
                        min(im.psnr_outside, PSNR_CAP_DB)
                        for im in rows
                        if im.psnr_outside is not None
                    ]
                ),
                "ssim_outside": _mean([im.ssim_outside for im in rows]),
            }
        return out

    @property
    def id_label(self) -> str:
        if not self.id_metric:
            return "ID-Sim"
        if self.id_metric == "l2":
            return f"ID distance ({self.id_model}, L2, lower = more alike)"
        return f"ID-Sim ({self.id_model}, cosine, higher = more alike)"


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def id_model(analyzer: FaceAnalyzer) -> str:
    return getattr(analyzer, "model_id", None) or (
        "arcface-buffalo_l" if analyzer.name == "insightface" else "dlib-resnet-v1"
    )


def id_label(analyzer: FaceAnalyzer) -> str:
    model, metric = id_model(analyzer), analyzer.embedding_metric
    return EvalReport(folder="", images=[], id_model=model, id_metric=metric).id_label
