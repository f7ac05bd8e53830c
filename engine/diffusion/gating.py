"""Attentional gating without the processors: GateConfig (the settings of one
entanglement run, checked by validate), the batch-layout constants (CFG halves,
branches), and the pure functions on masks and maps that eq. 7-9 are made of (region
weights, mask-to-token resizing, gated self-attention rows, cross-attention column
replacement, the mixes of gated rows and outputs). "The module docstring" in the
docstrings below is engine.diffusion.attention's, which describes the batch layout and
why the gated rows need no maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

MODES = ("map", "output")
SELF_ATTENTION_IMPLS = ("sdpa", "maps")
CROSS_HALVES = ("cond", "both")
BLOCKS = ("down", "mid", "up")
HALVES = 2  # CFG: unconditional, conditional
BRANCHES = 3  # original, edited, target
ORIGINAL, EDITED, TARGET = 0, 1, 2
UNCOND, COND = 0, 1


@dataclass
class GateConfig:
    """Settings of one entanglement run (see module docstring for the batch layout)."""

    faces: int
    face_mask: torch.Tensor  # (F, 1, H, W) in [0, 1], latent resolution
    element_mask: torch.Tensor  # (F, 1, H, W)
    overlap: tuple[float, float] = (0.5, 0.5)  # (lambda_o, lambda_e), eq. 8
    mode: str = "map"  # "map": gate self-attention maps; "output": mix layer outputs
    gate_blocks: tuple[str, ...] = ("down", "mid")
    self_attention: bool = True
    cross_attention: bool = True
    original_token_columns: list[tuple[int, int]] = field(default_factory=list)
    edited_token_columns: list[tuple[int, int]] = field(default_factory=list)
    capture_tokens: list[int] = field(default_factory=list)
    query_chunk: int | None = 1024
    # CFG halves whose target columns are replaced (eq. 9). "cond": the conditional half
    # only - in the unconditional half the text is the null-text embedding, whose
    # positions of "face" / "glasses" are padding, as prompt-to-prompt edits only
    # attn[h // 2:]. "both" is kept as an ablation.
    cross_attention_halves: str = "cond"
    # capture_only: the batch is F conditional samples of one branch (no CFG halves, no
    # branches); cross-attention maps of capture_tokens are read from every sample and
    # nothing is gated (the element-mask pre-pass).
    capture_only: bool = False
    # How mode "map" computes the gated rows: "sdpa" (fused attention, no maps; the
    # default) or "maps" (explicit softmax maps in query_chunk rows: the reference).
    self_attention_impl: str = "sdpa"

    def validate(self) -> None:
        """Raise ValueError with a clear message for settings that cannot work."""
        if not isinstance(self.faces, int) or self.faces < 1:
            raise ValueError(f"faces must be a positive int, got {self.faces!r}.")
        for name in ("face_mask", "element_mask"):
            m = getattr(self, name)
            if not isinstance(m, torch.Tensor) or m.ndim != 4 or m.shape[:2] != (self.faces, 1):
                shape = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
                raise ValueError(
                    f"{name} must be a (faces={self.faces}, 1, H, W) tensor, got {shape}."
                )
        if self.face_mask.shape != self.element_mask.shape:
            raise ValueError(
                f"face_mask {tuple(self.face_mask.shape)} and element_mask "
                f"{tuple(self.element_mask.shape)} must have the same shape."
            )
        if len(self.overlap) != 2:
            raise ValueError(f"overlap must be (lambda_o, lambda_e), got {self.overlap!r}.")
        if self.cross_attention_halves not in CROSS_HALVES:
            raise ValueError(
                f"cross_attention_halves must be one of {CROSS_HALVES}, "
                f"got {self.cross_attention_halves!r}."
            )
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}.")
        if self.self_attention_impl not in SELF_ATTENTION_IMPLS:
            raise ValueError(
                f"self_attention_impl must be one of {SELF_ATTENTION_IMPLS}, "
                f"got {self.self_attention_impl!r}."
            )
        unknown = [b for b in self.gate_blocks if b not in BLOCKS]
        if unknown:
            raise ValueError(f"gate_blocks may only hold {BLOCKS}, got {unknown}.")
        for name in ("original_token_columns", "edited_token_columns"):
            for pair in getattr(self, name):
                if len(pair) != 2 or any(not isinstance(c, int) or c < 0 for c in pair):
                    raise ValueError(
                        f"{name} holds (target column, source column) pairs of ints >= 0, "
                        f"got {pair!r}."
                    )
        if any(not isinstance(c, int) or c < 0 for c in self.capture_tokens):
            raise ValueError(f"capture_tokens must be ints >= 0, got {self.capture_tokens!r}.")
        if self.query_chunk is not None and (
            not isinstance(self.query_chunk, int) or self.query_chunk < 1
        ):
            raise ValueError(
                f"query_chunk must be a positive int or None, got {self.query_chunk!r}."
            )


# --------------------------------------------------------------------------------------
# Pure functions on masks and maps
# --------------------------------------------------------------------------------------


def block_of(layer_name: str) -> str:
    """UNet part of a processor key: "down" | "mid" | "up"."""
    head = layer_name.split(".", 1)[0]
    parts = {"down_blocks": "down", "mid_block": "mid", "up_blocks": "up"}
    if head not in parts:
        raise ValueError(
            f"Cannot tell the UNet part of attention layer {layer_name!r}: expected a name "
            "starting with down_blocks, mid_block or up_blocks."
        )
    return parts[head]


def grid_for_tokens(height: int, width: int, tokens: int) -> tuple[int, int]:
    """(h, w) with h * w == tokens and the aspect ratio of a height x width mask.

    Exact ratio first; otherwise the grid the UNet makes by halving an odd size with
    rounding up (stride-2 convolutions), e.g. 9 x 7 -> 5 x 4 -> 3 x 2.
    """
    # exact: h / w == height / width and h * w == tokens  =>  h = sqrt(tokens * height / width)
    h = round(math.sqrt(tokens * height / width))
    if h > 0 and tokens % h == 0 and h * width == (tokens // h) * height:
        return h, tokens // h
    h, w = height, width
    while h * w > tokens:
        h, w = -(-h // 2), -(-w // 2)
    if h * w == tokens:
        return h, w
    raise ValueError(
        f"No integer grid with {tokens} tokens has the aspect ratio of the {height}x{width} "
        "mask. Give masks at the latent resolution (or a multiple of it) of the UNet input."
    )


def resize_mask_to_tokens(mask: torch.Tensor, tokens: int) -> torch.Tensor:
    """Area-resize (F, 1, H, W) masks to a layer's token grid: (F, tokens, 1), row-major.

    The grid keeps the mask's aspect ratio (the UNet downsamples both sides alike);
    raises ValueError if no integer grid with `tokens` cells fits.
    """
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (F, 1, H, W), got {tuple(mask.shape)}.")
    h, w = grid_for_tokens(mask.shape[-2], mask.shape[-1], tokens)
    small = F.interpolate(mask.float(), size=(h, w), mode="area")
    return small.reshape(mask.shape[0], h * w, 1).to(mask.dtype)


def region_weights(face_mask: torch.Tensor, element_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Soft region memberships of eq. 8; they sum to 1 everywhere.

    face_only = f(1-e), element_only = e(1-f), overlap = fe, rest = (1-f)(1-e).
    Binary masks give exact, disjoint regions.
    """
    f = face_mask.clamp(0, 1)
    e = element_mask.clamp(0, 1)
    return {
        "face_only": f * (1 - e),
        "element_only": e * (1 - f),
        "overlap": f * e,
        "rest": (1 - f) * (1 - e),
    }


def _source_weights(
    regions: dict[str, torch.Tensor], overlap: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row weights of (original, edited, target) sources, eq. 7-8."""
    lam_o, lam_e = float(overlap[0]), float(overlap[1])
    w_o = regions["face_only"] + lam_o * regions["overlap"]
    w_e = regions["element_only"] + lam_e * regions["overlap"]
    return w_o, w_e, regions["rest"]


def gate_self_attention(
    map_o: torch.Tensor,
    map_e: torch.Tensor,
    map_t: torch.Tensor,
    regions: dict[str, torch.Tensor],
    overlap: tuple[float, float],
) -> torch.Tensor:
    """Mask-selective self-attention replacement (eq. 7-8), row by row.

    Maps are (..., Q, K) softmax maps of the original, edited and target branches; region
    tensors broadcast as (..., Q, 1). Face-only rows take map_o's row, element-only rows
    map_e's, overlap rows lambda_o * map_o + lambda_e * map_e, the rest keep map_t; then
    each row is renormalised to sum 1 ("valid attention distribution", sec. 2.4). A row
    whose weights are all zero (overlap with lambda_o = lambda_e = 0) keeps map_t's row.
    """
    w_o, w_e, w_t = (w.to(map_t.dtype) for w in _source_weights(regions, overlap))
    gated = w_o * map_o + w_e * map_e + w_t * map_t
    total = gated.sum(dim=-1, keepdim=True, dtype=torch.float32)
    ok = total > 1e-6
    gated = gated / torch.where(ok, total, torch.ones_like(total)).to(gated.dtype)
    return torch.where(ok, gated, map_t)


def replace_cross_attention_columns(
    map_t: torch.Tensor,
    map_o: torch.Tensor,
    map_e: torch.Tensor,
    original_token_columns: list[tuple[int, int]],
    edited_token_columns: list[tuple[int, int]],
) -> torch.Tensor:
    """Token-selective cross-attention replacement (eq. 9).

    Returns a copy of the target's (..., Q, K) map whose column t comes from map_o's
    column s for each (t, s) in original_token_columns (T_o, e.g. "face") and from map_e's
    column s for each (t, s) in edited_token_columns (T_e, e.g. "glasses"). Other columns
    are untouched and rows are NOT renormalised (prompt-to-prompt replacement).
    """
    keys = map_t.shape[-1]
    out = map_t.clone()
    for name, source, pairs in (
        ("original_token_columns", map_o, original_token_columns),
        ("edited_token_columns", map_e, edited_token_columns),
    ):
        for t, s in pairs:
            if not (0 <= t < keys and 0 <= s < source.shape[-1]):
                raise ValueError(
                    f"{name} pair {(t, s)} is outside the {keys} text tokens of the prompts."
                )
            out[..., t] = source[..., s]
    return out


def mix_gated_rows(
    target: torch.Tensor,
    original_with_vt: torch.Tensor,
    edited_with_vt: torch.Tensor,
    weights: dict[str, torch.Tensor],
    config: GateConfig,
) -> torch.Tensor:
    """Gated target rows of mode "map" from three attention outputs (module docstring):
    the target's own, and the target's V under the original's and the edited's
    probabilities, each (half, F, heads, L, d); region weights (F, L, 1). Rows whose
    weights sum to ~0 keep the target's own attention, as gate_self_attention keeps map_t."""
    faces = config.faces
    w_o, w_e, w_t = (
        w.to(target.dtype).reshape(1, faces, 1, -1, 1)  # broadcast over half and head
        for w in _source_weights(weights, config.overlap)
    )
    total = w_o + w_e + w_t
    ok = total > 1e-6
    mixed = (w_o * original_with_vt + w_e * edited_with_vt + w_t * target) / torch.where(
        ok, total, torch.ones_like(total)
    )
    return torch.where(ok, mixed, target)


def mix_gated_outputs(
    original: torch.Tensor,
    edited: torch.Tensor,
    target: torch.Tensor,
    weights: dict[str, torch.Tensor],
    config: GateConfig,
) -> torch.Tensor:
    """Mode "output": the branches' per-row attention outputs (before to_out), each
    (half, F, heads, L, d), mixed with the eq. 8 weights normalised to sum 1 per row (a
    convex mix, so the "output" and "map" modes agree on how much each source counts)."""
    w_o, w_e, w_t = _source_weights(weights, config.overlap)
    total = w_o + w_e + w_t
    ok = total > 1e-6
    w_o, w_e = (torch.where(ok, w / total.clamp_min(1e-6), 0.0) for w in (w_o, w_e))
    w_t = torch.where(ok, w_t / total.clamp_min(1e-6), 1.0)
    shape = (1, config.faces, 1, -1, 1)  # broadcast over half and head
    return w_o.reshape(shape) * original + w_e.reshape(shape) * edited + w_t.reshape(shape) * target
