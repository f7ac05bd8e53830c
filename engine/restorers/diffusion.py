"""Diffusion mode: the EditedID method on a Stable Diffusion 1.x model, as a restorer plugin.

`DiffusionRestorer(model)` wraps `engine.diffusion.restore.restore_faces` (all faces in
one UNet batch) in the out-of-memory ladder of `engine.models.fallback`. It is built
with a loaded model, or loads one from an engine.models.spec.ModelSpec (`from_spec`, as
the command line and a Ray worker do). torch and the diffusion code are imported only
when it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine.errors import InputError
from engine.params import EditedIDParams
from engine.photo.contract import CropJob, RestoredCrops
from engine.restorers.base import Restorer, register

NO_MODEL_MESSAGE = "Diffusion mode needs a Stable Diffusion model; use classic mode or load one."


def _no_element_message(job: CropJob) -> str:
    return (
        f"{job.name[:1].upper()}{job.name[1:]}: no edited element was found, so only the "
        "identity is restored. Paint the element mask to keep glasses, a hat or other edits."
    )


@register
class DiffusionRestorer(Restorer):
    """EditedID on a loaded SD model (`model`: engine.models.loading.SDModel)."""

    name = "diffusion"
    summary = "EditedID on a Stable Diffusion 1.x model (the full method)"
    needs_model = True

    def __init__(self, model=None) -> None:
        self.model = model

    def check(self) -> None:
        if self.model is None:
            raise InputError(NO_MODEL_MESSAGE)

    def crop_size(self, params: EditedIDParams) -> int:
        """The UNet works at the parameters' resolution."""
        return params.resolution

    def element_maps(
        self,
        edited_crops: Sequence[np.ndarray],
        params: EditedIDParams,
        *,
        on_step: Callable | None = None,
        cancel=None,
    ) -> list[np.ndarray] | None:
        """Cross-attention of the element words (one extra UNet call per crop; reported
        as the "element masks" stage, cancellable between the calls)."""
        from engine.diffusion.restore import element_attention_maps

        self.check()
        return element_attention_maps(
            self.model, list(edited_crops), params, on_step=on_step, cancel=cancel
        )

    def restore(
        self,
        jobs: Sequence[CropJob],
        params: EditedIDParams,
        *,
        on_step: Callable | None = None,
        cancel=None,
        on_message: Callable[[str], None] | None = None,
    ) -> RestoredCrops:
        """All jobs in one batched EditedID run, retried with less memory on OOM.

        The whole crop is regenerated, so each crop is pasted over face and element;
        element pixels outside the face stay exactly the edited photo's.
        """
        from engine.diffusion.restore import FacePair, restore_faces
        from engine.models.fallback import restore_with_fallback
        from engine.models.memory_plan import memory_ladder

        self.check()
        warnings: list[str] = []

        def say(text: str) -> None:
            warnings.append(text)
            if on_message is not None:
                on_message(text)

        for job in jobs:
            if not job.require_element and job.element_mask.max() < 128:
                say(_no_element_message(job))
        pairs = [
            FacePair(
                job.original,
                job.edited,
                job.face_mask,
                job.element_mask,
                overlap=job.overlap,
                name=job.name,
                require_element=job.require_element,
            )
            for job in jobs
        ]
        # each step of the ladder a smaller MemoryPlan, which restore_faces follows
        result = restore_with_fallback(
            lambda model, plan: restore_faces(
                model, pairs, params, on_step=on_step, cancel=cancel, plan=plan
            ),
            self.model,
            on_message=say,
            plans=memory_ladder(self.model, unet_faces=params.max_batch_faces),
        )
        return RestoredCrops(
            crops=[face.restored for face in result.faces],
            regions=[np.maximum(job.face_mask, job.element_mask) for job in jobs],
            keeps=[
                np.where(job.face_mask >= 128, 0, job.element_mask).astype(np.uint8) for job in jobs
            ],
            params=params,
            sidecar={"model": result.model, "engine": result.diagnostics()},
            warnings=warnings,
            element_attention=[face.element_attention for face in result.faces],
            engine_result=result,
        )
