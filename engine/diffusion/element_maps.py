"""The element-mask pre-pass: the cross-attention maps of the element words on each
edited crop before any restore (element_attention_maps, one UNet call per face through
prepass_maps), and attention_to_crop, which turns latent-sized maps into crop-sized
masks (also for the entanglement's maps).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.diffusion.attention import EntanglementAttention, GateConfig
from engine.diffusion.face_pairs import CancelToken
from engine.diffusion.latents import UNetStats, encode_images, predict_noise
from engine.diffusion.progress import (
    StepCallback,
    StepInfo,
    StepMonitor,
    begin_step,
    cancel_checker,
    monitoring,
)
from engine.diffusion.prompts import Prompts, encode_prompts
from engine.params import EditedIDParams


def attention_to_crop(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    merged = maps.float().amax(0, keepdim=True)[None]
    up = F.interpolate(merged, size=size, mode="bilinear", align_corners=False)[0, 0]
    up = up / up.max().clamp_min(1e-8)
    return up.clamp(0, 1).cpu().numpy()


ELEMENT_MASKS_STAGE = "element masks"


@torch.no_grad()
def element_attention_maps(
    model,
    edited_crops: list[np.ndarray],
    params: EditedIDParams | None = None,
    *,
    timestep: int = 500,
    on_step: StepCallback | None = None,
    cancel: CancelToken = None,
    stats: UNetStats | None = None,
) -> list[np.ndarray] | None:
    """Cross-attention of the element words on each edited crop, before any restore.

    Prompt-to-prompt style mask extraction, one UNet call per face: the edited latent,
    noised deterministically to `timestep`, with the edited prompt; the maps of the
    element tokens are read from the edited branch. Reports itself as the
    ELEMENT_MASKS_STAGE stage (`on_step(stage, face, faces, StepInfo())` before the first
    face and after each, a unit report before each face's VAE encode and UNet call) and
    checks `cancel` before each call and its blocks, so a cancel ends within one call. Returns
    crop-sized float maps in [0, 1], or None when there are no element words. `stats`
    counts the UNet work (stage ELEMENT_MASKS_STAGE).
    """
    params = params or EditedIDParams()
    words = tuple(w for w in params.element_words if w.strip())
    if not words or not edited_crops:
        return None
    check_cancel = cancel_checker(cancel)
    stats = stats if stats is not None else UNetStats()
    stats.stage = ELEMENT_MASKS_STAGE
    faces = len(edited_crops)
    if on_step is not None:
        on_step(ELEMENT_MASKS_STAGE, 0, faces, StepInfo())
    check_cancel()
    prompts = encode_prompts(model, params)
    generator = torch.Generator().manual_seed(params.seed)
    a = float(model.alphas_cumprod[timestep])
    result: list[np.ndarray] = []
    with monitoring(StepMonitor(on_step, check_cancel)):
        for f in range(faces):
            begin_step(ELEMENT_MASKS_STAGE, f, faces, 2)  # its VAE encode and UNet call
            latent = encode_images(model, [edited_crops[f]]).float()
            # CPU generator on purpose: the same noise on every device, then moved over
            noise = torch.randn(latent.shape, generator=generator, device="cpu").to(latent)
            noisy = (a**0.5) * latent + ((1 - a) ** 0.5) * noise
            maps = prepass_maps(model, noisy, timestep, prompts, params, stats)
            if maps is None:
                return None
            result.append(attention_to_crop(maps[0], edited_crops[f].shape[:2]))
            if on_step is not None:
                on_step(ELEMENT_MASKS_STAGE, f + 1, faces, StepInfo())
    return result


def prepass_maps(
    model, noisy, timestep: int, prompts: Prompts, params, stats
) -> torch.Tensor | None:
    """One face's pre-pass UNet call: (1, n, h, w) maps of the element tokens at the
    latent resolution, from the edited branch's conditional half (None: nothing captured)."""
    size = tuple(noisy.shape[-2:])
    empty = torch.zeros(noisy.shape[0], 1, *size, device=noisy.device)
    config = GateConfig(
        faces=noisy.shape[0],
        face_mask=empty,
        element_mask=empty,
        self_attention=False,
        cross_attention=False,
        capture_tokens=prompts.capture,
        capture_only=True,
    )
    cond = prompts.cond_edited[:1].expand(noisy.shape[0], -1, -1)
    gate = EntanglementAttention(model.unet, config)
    with gate:
        predict_noise(model, noisy, timestep, cond, None, 1.0, stats)
    return gate.captured_maps()
