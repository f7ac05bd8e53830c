"""Diffusion mode: the EditedID method on a Stable Diffusion 1.x model, as a restorer plugin.

`DiffusionRestorer(model)` wraps `engine.diffusion.restore.restore_faces` (all faces in
one UNet batch) in the out-of-memory ladder of `engine.models.fallback`. Its command-line
options are the model's (--model, --device, --dtype, memory savers, --compile, --allow-pickle,
--allow-download); `from_options` loads the model from them, the one place the command
line builds a model. torch and the diffusion code are imported only when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import numpy as np

from engine.errors import InputError
from engine.params import EditedIDParams
from engine.photo.contract import CropJob, RestoredCrops
from engine.restorers.base import Restorer, register

NO_MODEL_MESSAGE = "Diffusion mode needs a Stable Diffusion model; use classic mode or load one."


def _model_options(default_model: str) -> list[tuple[str, dict]]:
    return [
        ("--model", {
            "default": None,
            "help": "SD 1.x diffusers folder, single .safetensors file or hub id "
            f"(default {default_model}, looked up in the models folder).",
        }),
        ("--device", {"default": None, "help": "cuda, cuda:N or cpu (default: best available)."}),
        ("--dtype", {"default": None, "help": "fp16, bf16 or fp32 (default: fp16 on CUDA)."}),
        ("--low-vram", {
            "action": "store_true",
            "help": "VAE tiling; VAE and text encoder off the GPU while the UNet works; "
            "null-text one face per pass; the entanglement's recorded attention in RAM.",
        }),
        ("--cpu-offload", {"action": "store_true", "help": "Keep idle model parts in RAM."}),
        ("--compile", {
            "action": "store_true",
            "help": "torch.compile the UNet (GPU speed-up for long runs; the first restore "
            "pays minutes of compiling; falls back to normal with a note where it cannot).",
        }),
        ("--compile-mode", {
            "default": "default",
            "choices": ("default", "reduce-overhead", "max-autotune"),
            "help": "with --compile: torch.compile's mode (reduce-overhead: CUDA graphs, "
            "more GPU memory).",
        }),
        ("--allow-pickle", {
            "action": "store_true",
            "help": "Allow .ckpt/.bin checkpoints (they can run code; only trusted files).",
        }),
        ("--allow-download", {
            "action": "store_true",
            "help": "Download a hub model that is not on this machine yet.",
        }),
    ]  # fmt: skip


def load_model_from_options(args: argparse.Namespace):
    """The SD model the parsed model options name (ModelError when it cannot load)."""
    from engine.models.loading import DEFAULT_SD_MODEL, LowMemory, load_sd_model

    low_vram = bool(getattr(args, "low_vram", False))
    model = load_sd_model(
        args.model or DEFAULT_SD_MODEL,
        device=args.device,
        dtype=args.dtype,
        allow_pickle=args.allow_pickle,
        allow_download=args.allow_download,
        models_dir=getattr(args, "models_dir", None),
        low_memory=LowMemory.low_vram(
            low_vram, cpu_offload=bool(getattr(args, "cpu_offload", False))
        ),
    )
    if getattr(args, "compile", False):
        from engine.models.compiled import compile_unet

        compile_unet(model, getattr(args, "compile_mode", "default"), on_message=_note)
    return model


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


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

    @classmethod
    def register_options(cls, parser) -> None:
        """The model options. An option the command already has (eval's --allow-download
        also covers its CLIP model) is left as the command defined it."""
        from engine.models.loading import DEFAULT_SD_MODEL

        for flag, options in _model_options(DEFAULT_SD_MODEL):
            try:
                parser.add_argument(flag, **options)
            except argparse.ArgumentError:
                continue

    @classmethod
    def from_options(cls, args: argparse.Namespace) -> DiffusionRestorer:
        return cls(load_model_from_options(args))

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
        result = restore_with_fallback(
            lambda model: restore_faces(model, pairs, params, on_step=on_step, cancel=cancel),
            self.model,
            on_message=say,
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
