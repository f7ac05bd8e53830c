"""Model plumbing shared by the three stages: prompts, VAE, noise prediction, previews.

Everything here counts its UNet work in a `UNetStats`, which the benchmark and the
cache tests read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from engine.diffusion.progress import UNET_CALL, VAE_DECODE, VAE_ENCODE, unit
from engine.errors import InputError, NumericalError
from engine.models.compiled import unet_forward

# Linear map from SD 1.x latents to RGB, good enough for a per-step preview at no cost
# (the factors used by several SD front-ends for "latent preview").
# Used on the CPU only: previews are made from .cpu() latents.
_LATENT_RGB_ROWS = [
    [0.298, 0.207, 0.208],
    [0.187, 0.286, 0.173],
    [-0.158, 0.189, 0.264],
    [-0.184, -0.271, -0.473],
]
_LATENT_RGB = torch.tensor(_LATENT_RGB_ROWS, device="cpu")


@dataclass
class UNetStats:
    """UNet work done in a run: calls, samples pushed through, backward passes."""

    forward_calls: int = 0
    forward_samples: int = 0
    backward_calls: int = 0
    backward_samples: int = 0
    # The stage the next calls belong to (set by the restore code) and the samples of
    # each stage: {stage: {"forward": n, "backward": n, "calls": n}} (engine.diffusion.cost
    # is checked against it).
    stage: str = ""
    by_stage: dict[str, dict[str, int]] = field(default_factory=dict)

    def count_forward(self, samples: int) -> None:
        self.forward_calls += 1
        self.forward_samples += samples
        row = self._row()
        row["forward"] += samples
        row["calls"] += 1

    def count_backward(self, samples: int) -> None:
        self.backward_calls += 1
        self.backward_samples += samples
        self._row()["backward"] += samples

    def _row(self) -> dict[str, int]:
        return self.by_stage.setdefault(self.stage, {"forward": 0, "backward": 0, "calls": 0})

    def add(self, other: UNetStats) -> None:
        self.forward_calls += other.forward_calls
        self.forward_samples += other.forward_samples
        self.backward_calls += other.backward_calls
        self.backward_samples += other.backward_samples
        for stage, row in other.by_stage.items():
            mine = self.by_stage.setdefault(stage, {"forward": 0, "backward": 0, "calls": 0})
            for key, value in row.items():
                mine[key] += value

    def as_dict(self) -> dict[str, int]:
        return {
            "forward_calls": self.forward_calls,
            "forward_samples": self.forward_samples,
            "backward_calls": self.backward_calls,
            "backward_samples": self.backward_samples,
        }


def token_ids(tokenizer, prompt: str) -> list[int]:
    return tokenizer(
        prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True
    ).input_ids


def word_columns(tokenizer, prompt: str, words: tuple[str, ...] | list[str]) -> list[int]:
    """Token columns of `words` in `prompt` (multi-token words give several columns).

    Raises InputError naming the word when it is not in the prompt.
    """
    ids = token_ids(tokenizer, prompt)
    columns: list[int] = []
    for word in words:
        word_ids = tokenizer(word, add_special_tokens=False).input_ids
        if not word_ids:
            raise InputError(
                f"The word {word!r} gives no tokens; use a real word such as 'glasses'."
            )
        found = None
        for start in range(1, len(ids) - len(word_ids) + 1):
            if ids[start : start + len(word_ids)] == word_ids:
                found = start
                break
        if found is None:
            raise InputError(
                f"The word {word!r} does not appear in the prompt {prompt!r}. Element words "
                "must be words of the edit (e.g. 'glasses', 'hat'); face words must be words "
                "of the base prompt."
            )
        columns.extend(range(found, found + len(word_ids)))
    return columns


@torch.no_grad()
def encode_text(model, prompts: list[str]) -> torch.Tensor:
    tok = model.tokenizer(
        prompts,
        padding="max_length",
        max_length=model.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    with model.use("text_encoder"):
        device = next(model.text_encoder.parameters()).device
        out = model.text_encoder(tok.input_ids.to(device))[0]
    return out.to(model.device, model.dtype)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> 1x3xHxW float in [-1, 1]."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(
            f"Expected an HxWx3 uint8 RGB image, got shape {image.shape} {image.dtype}."
        )
    return (
        torch.from_numpy(np.ascontiguousarray(image).copy()).permute(2, 0, 1)[None].float() / 127.5
        - 1.0
    )


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """1x3xHxW in [-1, 1] -> HxWx3 uint8."""
    x = ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().byte()
    return x[0].permute(1, 2, 0).cpu().numpy()


def _finite(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x).all())


def _run_vae(model, fn, what: str, unit_name: str) -> torch.Tensor:
    """fn(vae, dtype) in the VAE's dtype; if a half-precision VAE gives NaN / inf (its
    activations can overflow fp16), run it again in fp32 for this call only. Non-finite
    in fp32 too raises NumericalError: a NaN decode must never become a black image.
    One unit of the current restore's monitor (reported, cancel-checked per block)."""
    with model.use("vae"), unit(unit_name, model.vae):
        vae = model.vae
        dtype = next(vae.parameters()).dtype
        out = fn(vae, dtype)
        if _finite(out):
            return out.float()
        if dtype != torch.float32:
            vae.to(torch.float32)
            try:
                out = fn(vae, torch.float32)
            finally:
                vae.to(dtype)
            if _finite(out):
                return out.float()
    raise NumericalError(
        f"The VAE {what} gave non-finite values (NaN/inf) even in fp32, so there is no "
        "image to save. The model weights may be damaged, or the parameters extreme "
        "(guidance, null-text learning rate): check the model with the self-test."
    )


@torch.no_grad()
def encode_images(model, images: list[np.ndarray]) -> torch.Tensor:
    """Images -> latents (VAE posterior mean times the scaling factor), fp32.

    One image per VAE call: a restore's monitor (engine.diffusion.progress) reports and
    cancel-checks each (the tiny model's VAE at 512 px takes most of a minute per image
    on a CPU; a batch of six was minutes without a word and could not be cancelled)."""
    parts = []
    for image in images:
        batch = image_to_tensor(image)

        def encode(vae, dtype, batch=batch):
            device = next(vae.parameters()).device
            return vae.encode(batch.to(device, dtype)).latent_dist.mean

        parts.append(_run_vae(model, encode, "encoding", VAE_ENCODE))
    latents = torch.cat(parts)
    return (latents * model.vae_scaling_factor).to(model.device)


@torch.no_grad()
def decode_latents(model, latents: torch.Tensor) -> list[np.ndarray]:
    """Latents -> HxWx3 uint8 images, one VAE call each (as encode_images). Raises
    NumericalError for non-finite latents or a decode that stays non-finite in fp32
    (never a silent black image)."""
    if not _finite(latents):
        raise NumericalError(
            "The diffusion result is not finite (NaN/inf), so there is nothing to decode. "
            "Lower the guidance or the null-text learning rate, or run in fp32."
        )
    images = []
    for i in range(latents.shape[0]):
        scaled = latents[i : i + 1].float() / model.vae_scaling_factor

        def decode(vae, dtype, scaled=scaled):
            device = next(vae.parameters()).device
            return vae.decode(scaled.to(device, dtype)).sample

        images.append(tensor_to_image(_run_vae(model, decode, "decoding", VAE_DECODE)))
    return images


def latent_preview(latents: torch.Tensor) -> np.ndarray:
    """Cheap RGB preview (h x w x 3 uint8, 1/8 of the image size) of one latent."""
    lat = latents.detach().float().cpu()
    if lat.ndim == 4:
        lat = lat[0]
    rgb = torch.einsum("chw,cr->hwr", lat, _LATENT_RGB)
    rgb = ((rgb + 1.0) * 127.5).clamp(0, 255).round().byte()
    return rgb.numpy()


def face_previews(latents: torch.Tensor) -> dict[int, np.ndarray]:
    """latent_preview of every face of a (F, 4, h, w) batch, by batch slot."""
    return {f: latent_preview(latents[f]) for f in range(latents.shape[0])}


def predict_noise(
    model,
    latents: torch.Tensor,
    t: int,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    guidance: float,
    stats: UNetStats,
) -> torch.Tensor:
    """Classifier-free guided noise prediction, both CFG halves in one UNet batch.

    Without an unconditional embedding only the conditional half runs. With one, both
    halves always run, guidance 1 included: the entanglement processors need both halves
    of the batch whatever the guidance. Gradients flow when the caller enables them
    (null-text optimisation).
    """
    n = latents.shape[0]
    if uncond is None:
        eps = _unet(model, latents, t, cond, stats)
        return eps
    eps = _unet(model, torch.cat([latents, latents]), t, torch.cat([uncond, cond]), stats)
    eps_u, eps_c = eps[:n], eps[n:]
    return eps_u + guidance * (eps_c - eps_u)


def _unet(model, latents: torch.Tensor, t: int, context: torch.Tensor, stats: UNetStats):
    stats.count_forward(latents.shape[0])
    compiled = getattr(model, "compiled_unet", None) is not None
    with model.use("unet"), unit(UNET_CALL, model.unet, compiled=compiled):
        timestep = torch.full((latents.shape[0],), t, device=latents.device, dtype=torch.long)
        # the compiled graph when compile_unet() was asked for and applies, else eager
        return unet_forward(model, latents.to(model.dtype), timestep, context)
