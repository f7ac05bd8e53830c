"""The prompts of a restore: the original and edited prompts and the empty one encoded
(kept per model, a few entries), and the token columns of the face and element words that
the entanglement's cross-attention replaces and captures (Prompts, encode_prompts).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from engine.diffusion.latents import encode_text, word_columns
from engine.params import EditedIDParams


@dataclass
class Prompts:
    cond_original: torch.Tensor  # (1, 77, D)
    cond_edited: torch.Tensor
    uncond: torch.Tensor
    original_columns: list[tuple[int, int]]
    edited_columns: list[tuple[int, int]]
    capture: list[int]


def encode_prompts(model, params: EditedIDParams) -> Prompts:
    tok = model.tokenizer
    p_o, p_e = params.original_prompt, params.edited_prompt
    face_in_o = word_columns(tok, p_o, params.face_words)
    face_in_t = word_columns(tok, p_e, params.face_words)
    words = tuple(w for w in params.element_words if w.strip())
    element_cols = word_columns(tok, p_e, words) if words else []
    cond_o, cond_e, uncond = _encoded(model, (p_o, p_e, "")).split(1)
    return Prompts(
        cond_o,
        cond_e,
        uncond,
        list(zip(face_in_t, face_in_o, strict=True)),
        [(c, c) for c in element_cols],  # P_t = P_e: same columns
        element_cols,
    )


# Prompt embeddings kept per model (the pre-pass and the restore of one photo ask for the
# same three prompts); a few entries, keyed by the texts and the model's device and dtype.
_TEXT_CACHE_SIZE = 8


def _encoded(model, texts: tuple[str, ...]) -> torch.Tensor:
    cache = getattr(model, "_editedid_text_cache", None)
    if cache is None:
        cache = OrderedDict()
        model._editedid_text_cache = cache
    key = (texts, str(model.device), str(model.dtype), str(getattr(model, "fingerprint", "")))
    if key not in cache:
        cache[key] = encode_text(model, list(texts))
        while len(cache) > _TEXT_CACHE_SIZE:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return cache[key]
