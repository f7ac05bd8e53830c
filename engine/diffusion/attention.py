"""Entanglement stage: attention processors for attentional gating (paper 2.4, eq. 7-9).

The target branch is generated in the same UNet batch as the original (identity source)
and edited (element source) branches. Its attention is steered here:

- Self-attention (attn1) in the gated UNet parts (paper A.5: down + mid by default): each
  query row of the target's map is taken from the original's map where only the face mask
  is set, from the edited's where only the element mask is set, from a lambda-weighted sum
  in the overlap, and kept elsewhere; rows are then renormalised (eq. 7-8).
- Cross-attention (attn2): the target's columns for tokens in T_o come from the original
  branch, for T_e from the edited branch (eq. 9, prompt-to-prompt style replacement).

Why processors and not hooks or patched forwards: diffusers routes every `Attention` call
through `attn.processor(attn, hidden_states, ...)`; installing small callables with
`unet.set_attn_processor(dict)` is the supported extension point, is undone by installing
the previous processors again, and leaves the modules (and their weights) untouched.
Diffusers' default processor (SDPA) never materialises the softmax maps, and neither do
the gated layers: every softmax row sums to 1, so the gated target row (eq. 7-8)

    (w_o P_o + w_e P_e + w_t P_t) V_t / (w_o + w_e + w_t)
  = (w_o SDPA(q_o, k_o, V_t) + w_e SDPA(q_e, k_e, V_t) + w_t SDPA(q_t, k_t, V_t)) / total

is three fused attention calls with the target's V (one batched call here, together with
the original and edited branches' plain attention), no Q x K map. The map-level version
(`self_attention_impl="maps"`: `attn.get_attention_scores` in query chunks, as
`AttnProcessor`) is kept as the reference the tests compare with. Cross-attention maps
(Q x 77) are small and still built explicitly. Every ungated layer keeps
`AttnProcessor2_0` and costs nothing extra.

Batch layout (built by the restore code): B = 2 * 3 * F samples,
``index = half * 3F + branch * F + face``; half 0 = unconditional CFG half, 1 = conditional;
branch 0 = original, 1 = edited, 2 = target. After `head_to_batch_dim` the index is
``sample * heads + head``, so a (B * heads, Q, K) map views as (2, 3, F, heads, Q, K).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.diffusion.gating import (
    BRANCHES,
    COND,
    EDITED,
    HALVES,
    ORIGINAL,
    TARGET,
    UNCOND,
    GateConfig,
    block_of,
    gate_self_attention,
    grid_for_tokens,
    mix_gated_outputs,
    mix_gated_rows,
    region_weights,
    replace_cross_attention_columns,
    resize_mask_to_tokens,
)

__all__ = [
    "COND",
    "UNCOND",
    "EntanglementAttention",
    "GateConfig",
    "GatedCrossAttnProcessor",
    "GatedSelfAttnProcessor",
    "block_of",
    "gate_self_attention",
    "mix_gated_outputs",
    "mix_gated_rows",
    "region_weights",
    "replace_cross_attention_columns",
    "resize_mask_to_tokens",
]


# --------------------------------------------------------------------------------------
# Processors
# --------------------------------------------------------------------------------------


class _Projected:
    """q, k, v of one attention call in diffusers' (B * heads, L, d) layout, plus what the
    epilogue needs to undo the prologue (AttnProcessor's structure)."""

    __slots__ = ("batch", "query", "key", "value", "mask", "residual", "shape4d")


def _project(attn, hidden_states, encoder_hidden_states, attention_mask, temb) -> _Projected:
    p = _Projected()
    p.residual = hidden_states
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    p.shape4d = None
    if hidden_states.ndim == 4:
        b, c, h, w = hidden_states.shape
        p.shape4d = (b, c, h, w)
        hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
    source = hidden_states if encoder_hidden_states is None else encoder_hidden_states
    p.batch, key_len, _ = source.shape
    p.mask = attn.prepare_attention_mask(attention_mask, key_len, p.batch)
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    query = attn.to_q(hidden_states)
    if encoder_hidden_states is None:
        encoder_hidden_states = hidden_states
    elif attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    key = attn.to_k(encoder_hidden_states)
    value = attn.to_v(encoder_hidden_states)
    query = attn.head_to_batch_dim(query)
    key = attn.head_to_batch_dim(key)
    value = attn.head_to_batch_dim(value)
    if attn.norm_q is not None or attn.norm_k is not None:  # per-head norms (AttnProcessor2_0)
        heads = attn.heads
        if attn.norm_q is not None:
            query = attn.norm_q(query.unflatten(0, (-1, heads))).flatten(0, 1)
        if attn.norm_k is not None:
            key = attn.norm_k(key.unflatten(0, (-1, heads))).flatten(0, 1)
    p.query, p.key, p.value = query, key, value
    return p


def _finish(attn, p: _Projected, out: torch.Tensor) -> torch.Tensor:
    """(B * heads, L, d) attention output -> layer output (to_out, residual, rescale)."""
    hidden_states = attn.batch_to_head_dim(out)
    hidden_states = attn.to_out[0](hidden_states)
    hidden_states = attn.to_out[1](hidden_states)
    if p.shape4d is not None:
        hidden_states = hidden_states.transpose(-1, -2).reshape(p.shape4d)
    if attn.residual_connection:
        hidden_states = hidden_states + p.residual
    return hidden_states / attn.rescale_output_factor


def _sdpa(attn, p: _Projected) -> torch.Tensor:
    """Plain attention output in (B * heads, L, d) layout via SDPA (no maps)."""
    heads = attn.heads
    mask = p.mask
    if mask is not None:
        mask = mask.view(p.batch, heads, -1, mask.shape[-1])
    out = F.scaled_dot_product_attention(
        p.query.unflatten(0, (-1, heads)),
        p.key.unflatten(0, (-1, heads)),
        p.value.unflatten(0, (-1, heads)),
        attn_mask=mask,
        dropout_p=0.0,
        is_causal=False,
        scale=attn.scale,
    )
    return out.flatten(0, 1).to(p.query.dtype)


def _row_chunks(rows: int, chunk: int | None):
    step = rows if chunk is None else chunk
    for start in range(0, rows, step):
        yield start, min(start + step, rows)


def _split(t: torch.Tensor, faces: int, heads: int) -> torch.Tensor:
    """(B * heads, ...) -> (half, branch, face, head, ...)."""
    return t.view(HALVES, BRANCHES, faces, heads, *t.shape[1:])


class _GatedProcessor:
    """Shared prologue of the gated processors: batch check and explicit maps by chunk."""

    def __init__(self, owner: EntanglementAttention, name: str):
        self.owner = owner
        self.name = name

    def _check_batch(self, batch: int) -> None:
        faces = self.owner.config.faces
        if self.owner.config.capture_only:
            if batch != faces:
                raise ValueError(
                    f"Capture-only attention at {self.name} got a UNet batch of {batch}; it "
                    f"expects one conditional sample per face ({faces})."
                )
            return
        if batch != HALVES * BRANCHES * faces:
            raise ValueError(
                f"Entanglement attention at {self.name} got a UNet batch of {batch}; it expects "
                f"2 (CFG halves) x 3 (original, edited, target) x {faces} faces = "
                f"{HALVES * BRANCHES * faces}. These processors are only for the entanglement "
                "stage: leave the EntanglementAttention context before other UNet calls."
            )

    def _chunked(self, attn, p: _Projected, modify):
        """Explicit attention in query chunks; `modify(maps6, start, stop)` returns the
        (half, branch, face, head, rows, K) maps to multiply with V. Row-wise edits make
        chunking exact, and it bounds the memory of the materialised maps."""
        faces, heads = self.owner.config.faces, attn.heads
        rows = p.query.shape[1]
        out = p.query.new_empty(p.query.shape[0], rows, p.value.shape[-1])
        value6 = _split(p.value, faces, heads)
        for start, stop in _row_chunks(rows, self.owner.config.query_chunk):
            mask = p.mask
            if mask is not None and mask.shape[1] > 1:
                mask = mask[:, start:stop]
            maps = attn.get_attention_scores(p.query[:, start:stop], p.key, mask)
            maps6 = modify(_split(maps, faces, heads), start, stop)
            out[:, start:stop] = torch.matmul(maps6.to(value6.dtype), value6).flatten(0, 3)
        return out


class GatedSelfAttnProcessor(_GatedProcessor):
    """attn1 in a gated UNet part: eq. 7-8 on the target's rows, per CFG half.

    Original and edited samples keep plain attention; the target's rows of each half are
    gated with the original and edited maps of the SAME half, so the unconditional and
    conditional noise predictions are steered alike (otherwise CFG would amplify the
    difference between a gated and an ungated half).
    """

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        p = _project(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        self._check_batch(p.batch)
        cfg = self.owner.config
        weights = self.owner.region_weights_for(p.query.shape[1], p.query)
        if cfg.mode == "output":
            out = self._gate_outputs(attn, p, weights)
        elif cfg.self_attention_impl == "sdpa" and p.mask is None:
            out = self._gate_sdpa(attn, p, weights)
        else:

            def modify(maps6, start, stop):
                chunk = {k: v[:, start:stop] for k, v in weights.items()}  # (F, rows, 1)
                chunk = {k: v[None, :, None] for k, v in chunk.items()}  # (1, F, 1, rows, 1)
                gated = gate_self_attention(
                    maps6[:, ORIGINAL], maps6[:, EDITED], maps6[:, TARGET], chunk, cfg.overlap
                )
                # a new tensor instead of writing into the softmax output (autograd-safe)
                return torch.cat([maps6[:, :TARGET], gated[:, None]], dim=1)

            out = self._chunked(attn, p, modify)
        return _finish(attn, p, out)

    def _gate_sdpa(self, attn, p: _Projected, weights) -> torch.Tensor:
        """mode "map" without maps (module docstring): one fused attention call over
        (original, edited, target, original-with-V_t, edited-with-V_t), then the target
        rows mixed with the eq. 8 weights. Rows whose weights sum to ~0 keep the target's
        own attention, as gate_self_attention keeps map_t there."""
        faces, heads = self.owner.config.faces, attn.heads
        q6, k6, v6 = (_split(t, faces, heads) for t in (p.query, p.key, p.value))
        groups = (ORIGINAL, EDITED, TARGET, ORIGINAL, EDITED)
        values = (ORIGINAL, EDITED, TARGET, TARGET, TARGET)
        q = torch.stack([q6[:, b] for b in groups], 1)  # (half, 5, F, heads, L, d)
        k = torch.stack([k6[:, b] for b in groups], 1)
        v = torch.stack([v6[:, b] for b in values], 1)
        out = F.scaled_dot_product_attention(
            q.flatten(0, 2), k.flatten(0, 2), v.flatten(0, 2), scale=attn.scale
        ).view(q.shape[:-1] + v.shape[-1:])
        mixed = mix_gated_rows(out[:, TARGET], out[:, 3], out[:, 4], weights, self.owner.config)
        return torch.stack([out[:, ORIGINAL], out[:, EDITED], mixed], 1).flatten(0, 3)

    def _gate_outputs(self, attn, p: _Projected, weights) -> torch.Tensor:
        """mode "output": mix per-row attention outputs (before to_out) of the three
        branches with the eq. 8 weights, normalised to sum 1 per row (a convex mix, so the
        "output" and "map" modes agree on how much each source counts)."""
        faces, heads = self.owner.config.faces, attn.heads
        out6 = _split(_sdpa(attn, p), faces, heads)
        mixed = mix_gated_outputs(
            out6[:, ORIGINAL], out6[:, EDITED], out6[:, TARGET], weights, self.owner.config
        )
        return torch.cat([out6[:, :TARGET], mixed[:, None]], dim=1).flatten(0, 3)


class GatedCrossAttnProcessor(_GatedProcessor):
    """attn2: eq. 9 column replacement for the target's conditional half (both halves as
    an ablation) and capture of the edited branch's conditional maps for
    `capture_tokens` (auto element masks)."""

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        p = _project(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        self._check_batch(p.batch)
        cfg = self.owner.config
        if cfg.capture_only:
            return _finish(attn, p, self._capture_all(attn, p))
        replace = cfg.cross_attention and (cfg.original_token_columns or cfg.edited_token_columns)
        captured = [] if cfg.capture_tokens else None

        def modify(maps6, start, stop):
            if captured is not None:
                cols = maps6[COND, EDITED][..., cfg.capture_tokens]  # (F, heads, rows, n)
                captured.append(cols.float().mean(dim=1))
            if not replace:
                return maps6
            halves = slice(COND, COND + 1) if cfg.cross_attention_halves == "cond" else slice(None)
            replaced = replace_cross_attention_columns(
                maps6[halves, TARGET],
                maps6[halves, ORIGINAL],
                maps6[halves, EDITED],
                cfg.original_token_columns,
                cfg.edited_token_columns,
            )
            if cfg.cross_attention_halves == "cond":
                replaced = torch.cat([maps6[UNCOND : UNCOND + 1, TARGET], replaced])
            return torch.cat([maps6[:, :TARGET], replaced[:, None]], dim=1)

        if cfg.capture_tokens and max(cfg.capture_tokens) >= p.key.shape[1]:
            raise ValueError(
                f"capture_tokens {cfg.capture_tokens} are outside the {p.key.shape[1]} text "
                "tokens of the prompts."
            )
        out = self._chunked(attn, p, modify)
        if captured is not None:
            self.owner._accumulate(torch.cat(captured, dim=1))  # (F, Q, n)
        return _finish(attn, p, out)

    def _capture_all(self, attn, p: _Projected) -> torch.Tensor:
        """capture_only: plain attention whose maps of capture_tokens (mean over heads)
        are kept for every sample of the batch."""
        cfg, heads = self.owner.config, attn.heads
        if max(cfg.capture_tokens) >= p.key.shape[1]:
            raise ValueError(
                f"capture_tokens {cfg.capture_tokens} are outside the {p.key.shape[1]} text "
                "tokens of the prompts."
            )
        maps = attn.get_attention_scores(p.query, p.key, p.mask)  # (F * heads, Q, 77)
        cols = maps.view(p.batch, heads, *maps.shape[1:])[..., cfg.capture_tokens]
        self.owner._accumulate(cols.float().mean(dim=1))
        return torch.bmm(maps.to(p.value.dtype), p.value)


class EntanglementAttention:
    """Owns the processors for one run; use as a context manager around the entanglement
    loop. On entry it installs the gated processors (AttnProcessor2_0 elsewhere); on exit,
    also after an exception, it puts the UNet's previous processors back."""

    # the processors of the gated self- and cross-attention layers (a subclass may swap them)
    self_processor: type = GatedSelfAttnProcessor
    cross_processor: type = GatedCrossAttnProcessor

    def __init__(self, unet, config: GateConfig):
        config.validate()
        self.unet = unet
        self.config = config
        self._previous: dict | None = None
        self._regions: dict = {}
        self._capture_sum: torch.Tensor | None = None
        self._capture_count = 0
        names = list(unet.attn_processors.keys())
        self._gated = [
            n
            for n in names
            if config.self_attention and _is_attn(n, "attn1") and _block(n) in config.gate_blocks
        ]
        if config.capture_only:
            self._gated = []
        wants_cross = config.capture_tokens or (
            config.cross_attention
            and (config.original_token_columns or config.edited_token_columns)
        )
        self._cross = [n for n in names if wants_cross and _is_attn(n, "attn2")]

    # -- processors ---------------------------------------------------------------------
    def processors(self) -> dict:
        """Processor for every attention layer of the UNet (a fresh dict)."""
        from diffusers.models.attention_processor import AttnProcessor2_0

        out = {}
        for name in self.unet.attn_processors:
            if name in self._gated:
                out[name] = self.self_processor(self, name)
            elif name in self._cross:
                out[name] = self.cross_processor(self, name)
            else:
                out[name] = AttnProcessor2_0()
        return out

    def gated_layer_names(self) -> list[str]:
        """Names (processor keys) of the attn1 layers whose self-attention is gated."""
        return list(self._gated)

    def cross_layer_names(self) -> list[str]:
        """Names of the attn2 layers that replace columns and/or capture maps."""
        return list(self._cross)

    def __enter__(self) -> EntanglementAttention:
        if self._previous is not None:
            raise RuntimeError("EntanglementAttention is already active; it is not re-entrant.")
        self.reset_capture()
        previous = dict(self.unet.attn_processors)
        # set_attn_processor pops the entries of the dict it gets: always pass a copy.
        self.unet.set_attn_processor(self.processors())
        self._previous = previous
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        previous, self._previous = self._previous, None
        if previous is not None:
            self.unet.set_attn_processor(dict(previous))

    # -- masks ----------------------------------------------------------------------------
    def region_weights_for(self, tokens: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """eq. 8 regions at a layer's resolution, (F, tokens, 1) each; cached per layer size."""
        key = (tokens, like.dtype, like.device)
        if key not in self._regions:
            face = resize_mask_to_tokens(self.config.face_mask.float(), tokens)
            element = resize_mask_to_tokens(self.config.element_mask.float(), tokens)
            regions = region_weights(face, element)
            self._regions[key] = {k: v.to(like.device, like.dtype) for k, v in regions.items()}
        return self._regions[key]

    # -- captured cross-attention maps ------------------------------------------------------
    def reset_capture(self) -> None:
        self._capture_sum = None
        self._capture_count = 0

    def _accumulate(self, maps: torch.Tensor) -> None:
        """Add one layer's (F, Q, n) maps, resized to the face mask's resolution."""
        height, width = self.config.face_mask.shape[-2:]
        h, w = grid_for_tokens(height, width, maps.shape[1])
        grid = maps.transpose(1, 2).reshape(maps.shape[0], maps.shape[2], h, w)
        mode = "area" if h >= height and w >= width else "bilinear"
        kwargs = {} if mode == "area" else {"align_corners": False}
        grid = F.interpolate(grid.float(), size=(height, width), mode=mode, **kwargs)
        grid = grid.to(self.config.face_mask.device)
        self._capture_sum = grid if self._capture_sum is None else self._capture_sum + grid
        self._capture_count += 1

    def captured_maps(self) -> torch.Tensor | None:
        """(F, len(capture_tokens), H, W) at the face mask's resolution: the edited branch's
        conditional cross-attention maps, mean over heads, layers and steps, each map scaled
        to max 1. None when nothing was captured."""
        if self._capture_sum is None:
            return None
        mean = self._capture_sum / self._capture_count
        peak = mean.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        return mean / peak


def _is_attn(name: str, which: str) -> bool:
    return name.endswith(f".{which}.processor")


def _block(name: str) -> str | None:
    try:
        return block_of(name)
    except ValueError:
        return None
