"""The original and edited branches' attention: recorded in null-text, replayed in the
entanglement, so the entanglement runs the target branch alone.

Why this is exact. The entanglement's original and edited branches (paper 2.4) start from
z_T with the fitted embeddings phi_o^i, phi_e^i and the same solver as null-text's last
forward of each step, so they recompute null-text's reconstruction chain sample for
sample (tests/test_restore.py checks they end on it). The target branch reads nothing of
theirs but the attention of the gated layers: q and k of the gated self-attention (mode
"map": the target's V under the original's and the edited's probabilities) or its output
(mode "output"), and a few columns of the cross-attention maps (eq. 9's source tokens and
the captured element maps). Null-text's two no-grad forwards per step - the conditional
noise, and the step with the fitted embeddings - are those samples' conditional and
unconditional halves. Recording there and replaying in a target-only batch takes the
entanglement from 2 x 3 to 2 samples per face and step (36 -> 12 UNet samples per face
at 6 steps) with the same arithmetic; only kernels' batch-size dependent rounding differs.

The cost is memory: for the default gating (down + mid blocks, mode "map") in fp16 at
512 px, 0.42 GiB per face for 6 steps (`record_bytes` computes it from the UNet, exactly
as recorded). Where it lives is `LowMemory.branch_record`, planned per restore by
engine.diffusion.restore: on the GPU when it fits beside null-text's passes, else in
(pinned) host memory, copied back step by step; "off" runs the three-branch entanglement.
Lifetime: the inversion cache keeps the records of the last restore call's faces, where
they are, so re-running those faces with new masks or overlap weights (the app's loop)
replays them too; the next call for other faces (the next photo of a batch), or with
gate settings a record does not fit, drops them before it plans its memory. Keeping
them for all 32 cached faces would hold ~13 GiB.

Not replayable (the three-branch path runs): the map-level reference implementation
(`self_attention_impl="maps"`) and attention masks (SD 1.x passes none).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.diffusion.attention import (
    COND,
    UNCOND,
    EntanglementAttention,
    GateConfig,
    _finish,
    _project,
    _row_chunks,
    _sdpa,
    mix_gated_outputs,
    mix_gated_rows,
    replace_cross_attention_columns,
)

HALVES = (UNCOND, COND)


@dataclass(frozen=True)
class RecordSpec:
    """What the target branch reads from the original and edited branches: the gated
    self-attention layers (q and k in mode "map", the attention output in mode
    "output", in both CFG halves) and, of the cross-attention layers, the map columns of
    eq. 9's source tokens (in the halves eq. 9 edits) and of the captured element
    tokens (conditional half)."""

    mode: str
    gated: tuple[str, ...]
    cross: tuple[str, ...]
    replace_halves: tuple[int, ...]
    original_columns: tuple[int, ...]  # source columns of P_o kept (T_o)
    edited_columns: tuple[int, ...]  # source columns of P_e kept (T_e, captured tokens)
    capture_columns: tuple[int, ...]

    @classmethod
    def for_config(cls, unet, config: GateConfig) -> RecordSpec | None:
        """The spec of an entanglement run with `config` (its masks and overlap weights do
        not matter); None when the run cannot be replayed (module docstring)."""
        if config.self_attention and config.mode == "map" and config.self_attention_impl != "sdpa":
            return None
        layers = EntanglementAttention(unet, config)
        replace = config.cross_attention and bool(
            config.original_token_columns or config.edited_token_columns
        )
        sources_o = {s for _t, s in config.original_token_columns} if replace else set()
        sources_e = {s for _t, s in config.edited_token_columns} if replace else set()
        halves = (COND,) if config.cross_attention_halves == "cond" else HALVES
        return cls(
            mode=config.mode,
            gated=tuple(layers.gated_layer_names()),
            cross=tuple(layers.cross_layer_names()),
            replace_halves=halves if replace else (),
            original_columns=tuple(sorted(sources_o)),
            edited_columns=tuple(sorted(sources_e | set(config.capture_tokens))),
            capture_columns=tuple(config.capture_tokens),
        )

    def layers(self, half: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(gated self-attention, cross-attention) layers recorded in CFG half `half`."""
        cross = half in self.replace_halves or (half == COND and bool(self.capture_columns))
        return self.gated, self.cross if cross else ()


class BranchRecord:
    """Recorded attention of `faces` faces' original and edited branches, per (step,
    CFG half, layer), on `home` (the model's device or the CPU). Every tensor has the
    faces on dim 0, in the order of the null-text batch that recorded them."""

    def __init__(self, spec: RecordSpec, faces: int, home: torch.device | str) -> None:
        self.spec = spec
        self.faces = faces
        self.home = torch.device(home)
        self.valid = True  # False: something unreplayable was seen (an attention mask)
        self._data: dict[tuple[int, int, str], dict[str, torch.Tensor]] = {}

    def put(self, step: int, half: int, layer: str, tensors: dict[str, torch.Tensor]) -> None:
        self._data[(step, half, layer)] = {k: _to_home(t, self.home) for k, t in tensors.items()}

    def get(
        self, step: int, half: int, layer: str, faces: list[int], device
    ) -> dict[str, torch.Tensor]:
        """The tensors of (step, half, layer) for `faces` (indices into this record),
        on `device`."""
        stored = self._data[(step, half, layer)]
        whole = faces == list(range(self.faces))
        out = {}
        for key, t in stored.items():
            if not whole:
                t = t.index_select(0, torch.as_tensor(faces, device=t.device))
            out[key] = t.to(device, non_blocking=True)
        return out

    def complete(self, steps: int) -> bool:
        """Whether every step, half and layer the spec names was recorded."""
        if not self.valid:
            return False
        for step in range(steps):
            for half in HALVES:
                gated, cross = self.spec.layers(half)
                if any((step, half, name) not in self._data for name in gated + cross):
                    return False
        return True

    def nbytes(self) -> int:
        """Bytes held (each storage once: q and k of both branches are views of one)."""
        seen: dict[int, int] = {}
        for tensors in self._data.values():
            for t in tensors.values():
                storage = t.untyped_storage()
                seen[storage.data_ptr() or id(storage)] = storage.nbytes()
        return sum(seen.values())


def _to_home(t: torch.Tensor, home: torch.device) -> torch.Tensor:
    """`t` itself on its own device; else copied to `home` (pinned host memory from a
    CUDA device, so the copy out and the copy back do not stall the host)."""
    if t.device == home:
        return t
    if home.type == "cpu" and t.device.type == "cuda":
        host = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=True)
        return host.copy_(t, non_blocking=True)
    return t.to(home)


# --- recording (null-text's no-grad forwards) ------------------------------------------------
class BranchRecorder:
    """Installs recording processors for one null-text forward at a time:

        with recorder.recording(step, COND):
            predict_noise(...)   # batch [original faces..., edited faces...]

    Layers the spec does not name keep their processors; outside `recording` the UNet
    is untouched, so null-text's forward + backward passes run as before."""

    def __init__(self, unet, record: BranchRecord) -> None:
        self.unet = unet
        self.record = record

    @contextmanager
    def recording(self, step: int, half: int) -> Iterator[None]:
        gated, cross = self.record.spec.layers(half)
        if not gated and not cross:
            yield
            return
        previous = dict(self.unet.attn_processors)
        processors = dict(previous)
        for name in gated:
            processors[name] = _RecordSelf(self.record, name, step, half)
        for name in cross:
            processors[name] = _RecordCross(self.record, name, step, half)
        # set_attn_processor pops the entries of the dict it gets: always pass a copy.
        self.unet.set_attn_processor(processors)
        try:
            yield
        finally:
            self.unet.set_attn_processor(dict(previous))


class _Recording:
    def __init__(self, record: BranchRecord, name: str, step: int, half: int) -> None:
        self.record, self.name, self.step, self.half = record, name, step, half

    def _branches(self, t: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(2F * heads, ...) of a [originals..., edited...] batch -> (F, heads, ...) each."""
        faces = self.record.faces
        if t.shape[0] != 2 * faces * heads:
            raise ValueError(
                f"Recording attention at {self.name} got a batch of {t.shape[0] // heads}; it "
                f"expects the original and edited branches of {faces} faces ({2 * faces})."
            )
        split = t.view(2, faces, heads, *t.shape[1:])
        return split[0], split[1]


class _RecordSelf(_Recording):
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):  # fmt: skip
        p = _project(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        out = _sdpa(attn, p)
        if p.mask is not None:
            self.record.valid = False
        elif self.record.spec.mode == "map":
            q_o, q_e = self._branches(p.query, attn.heads)
            k_o, k_e = self._branches(p.key, attn.heads)
            self.record.put(
                self.step, self.half, self.name, {"q_o": q_o, "q_e": q_e, "k_o": k_o, "k_e": k_e}
            )
        else:
            out_o, out_e = self._branches(out, attn.heads)
            self.record.put(self.step, self.half, self.name, {"out_o": out_o, "out_e": out_e})
        return _finish(attn, p, out)


class _RecordCross(_Recording):
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):  # fmt: skip
        p = _project(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        spec = self.record.spec
        if p.mask is not None:
            self.record.valid = False
            return _finish(attn, p, _sdpa(attn, p))
        # the maps (Q x 77: small) and output exactly as the three-branch processor makes
        # them for the original and edited branches
        maps = attn.get_attention_scores(p.query, p.key, None)
        out = torch.bmm(maps.to(p.value.dtype), p.value)
        maps_o, maps_e = self._branches(maps, attn.heads)
        kept = {}
        if spec.original_columns and self.half in spec.replace_halves:
            kept["o"] = _columns(maps_o, spec.original_columns)
        if spec.edited_columns:
            kept["e"] = _columns(maps_e, spec.edited_columns)
        self.record.put(self.step, self.half, self.name, kept)
        return _finish(attn, p, out)


def _columns(maps: torch.Tensor, columns: tuple[int, ...]) -> torch.Tensor:
    return maps.index_select(-1, torch.as_tensor(columns, device=maps.device))


# --- replay (the target-only entanglement) ----------------------------------------------------
class ReplayAttention(EntanglementAttention):
    """EntanglementAttention for a batch of the target branch alone, 2 x F samples
    ``index = half * F + face`` (predict_noise's layout), reading the original and edited
    branches from `record` for the faces `faces` (indices into the record). Set `step`
    before each UNet call."""

    def __init__(self, unet, config: GateConfig, record: BranchRecord, faces: list[int]):
        super().__init__(unet, config)
        spec = record.spec
        if (tuple(self._gated), tuple(self._cross)) != (spec.gated, spec.cross):
            raise ValueError(
                "The recorded branches were made for other gated layers; run the "
                "three-branch entanglement instead."
            )
        if len(faces) != config.faces:
            raise ValueError(f"{len(faces)} recorded faces for a run of {config.faces}.")
        self.record = record
        self.faces = list(faces)
        self.step = 0

    def source(self, half: int, layer: str, device) -> dict[str, torch.Tensor]:
        return self.record.get(self.step, half, layer, self.faces, device)


class _Replay:
    def __init__(self, owner: ReplayAttention, name: str) -> None:
        self.owner, self.name = owner, name

    def _target(self, t: torch.Tensor, heads: int) -> torch.Tensor:
        """(2F * heads, ...) target batch -> (half, F, heads, ...)."""
        faces = self.owner.config.faces
        if t.shape[0] != 2 * faces * heads:
            raise ValueError(
                f"Replayed entanglement attention at {self.name} got a UNet batch of "
                f"{t.shape[0] // heads}; it expects the target branch's 2 CFG halves x "
                f"{faces} faces = {2 * faces}."
            )
        return t.view(2, faces, heads, *t.shape[1:])

    def _sources(self, keys: tuple[str, ...], like: torch.Tensor) -> list[torch.Tensor]:
        """Recorded `keys` of both halves, (half, F, heads, ...) each, in `like`'s dtype."""
        halves = [self.owner.source(h, self.name, like.device) for h in HALVES]
        return [torch.stack([half[k] for half in halves]).to(like.dtype) for k in keys]


class _ReplaySelf(_Replay):
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):  # fmt: skip
        p = _project(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        cfg, heads = self.owner.config, attn.heads
        weights = self.owner.region_weights_for(p.query.shape[1], p.query)
        if cfg.mode == "output":
            out_t = self._target(_sdpa(attn, p), heads)
            out_o, out_e = self._sources(("out_o", "out_e"), out_t)
            mixed = mix_gated_outputs(out_o, out_e, out_t, weights, cfg)
        else:
            q_t, k_t, v_t = (self._target(t, heads) for t in (p.query, p.key, p.value))
            q_o, k_o, q_e, k_e = self._sources(("q_o", "k_o", "q_e", "k_e"), q_t)
            # one fused call: the target's own attention, and its V under the original's
            # and the edited's probabilities (attention.py's module docstring)
            q = torch.stack([q_t, q_o, q_e], 1)  # (half, 3, F, heads, L, d)
            k = torch.stack([k_t, k_o, k_e], 1)
            v = v_t.unsqueeze(1).expand(-1, 3, *v_t.shape[1:])
            out = F.scaled_dot_product_attention(
                q.flatten(0, 2), k.flatten(0, 2), v.flatten(0, 2), scale=attn.scale
            ).view(q.shape[:-1] + v.shape[-1:])
            mixed = mix_gated_rows(out[:, 0], out[:, 1], out[:, 2], weights, cfg)
        return _finish(attn, p, mixed.flatten(0, 2))


class _ReplayCross(_Replay):
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs):  # fmt: skip
        p = _project(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        cfg, spec, heads = self.owner.config, self.owner.record.spec, attn.heads
        value = self._target(p.value, heads)
        rows = p.query.shape[1]
        out = p.query.new_empty(p.query.shape[0], rows, p.value.shape[-1])
        recorded = {h: self.owner.source(h, self.name, p.query.device) for h in HALVES
                    if self.name in spec.layers(h)[1]}  # fmt: skip
        pairs_o, pairs_e = [], []
        if spec.replace_halves:  # eq. 9's pairs, their sources as columns of the record
            pairs_o = [(t, spec.original_columns.index(s)) for t, s in cfg.original_token_columns]
            pairs_e = [(t, spec.edited_columns.index(s)) for t, s in cfg.edited_token_columns]
        capture = [spec.edited_columns.index(c) for c in spec.capture_columns]
        capture = torch.as_tensor(capture, dtype=torch.long, device=p.query.device)
        captured = []
        for start, stop in _row_chunks(rows, cfg.query_chunk):
            maps = self._target(
                attn.get_attention_scores(p.query[:, start:stop], p.key, None), heads
            )
            if capture.numel():
                cols = recorded[COND]["e"][..., start:stop, :].index_select(-1, capture)
                captured.append(cols.float().mean(dim=1))  # (F, rows, n), mean over heads
            halves = []
            for h in HALVES:
                if h not in spec.replace_halves:
                    halves.append(maps[h])
                    continue
                source = recorded[h]
                # a branch with no source columns (no face or no element words) was not
                # recorded: an empty map stands in, no pair reads it
                map_o, map_e = (
                    source[key][..., start:stop, :] if key in source else maps[h][..., :0]
                    for key in ("o", "e")
                )
                halves.append(
                    replace_cross_attention_columns(maps[h], map_o, map_e, pairs_o, pairs_e)
                )
            maps = torch.stack(halves)
            out[:, start:stop] = torch.matmul(maps.to(value.dtype), value).flatten(0, 2)
        if captured:
            self.owner._accumulate(torch.cat(captured, dim=1))  # (F, Q, n)
        return _finish(attn, p, out)


ReplayAttention.self_processor = _ReplaySelf
ReplayAttention.cross_processor = _ReplayCross


# --- size ------------------------------------------------------------------------------------
def layer_scales(unet) -> dict[str, int]:
    """{attention layer prefix: how many times the UNet halved the latent before it}
    ("down_blocks.1" -> 1 ...), read from the blocks' down- and upsamplers."""
    scales, level = {}, 0
    for i, block in enumerate(unet.down_blocks):
        scales[f"down_blocks.{i}"] = level
        level += 1 if getattr(block, "downsamplers", None) else 0
    scales["mid_block"] = level
    for i, block in enumerate(unet.up_blocks):
        scales[f"up_blocks.{i}"] = level
        level -= 1 if getattr(block, "upsamplers", None) else 0
    return scales


def _block_prefix(layer: str) -> str:
    """ "down_blocks.1.attentions.0...." -> "down_blocks.1"; "mid_block...." -> "mid_block"."""
    parts = layer.split(".")
    return parts[0] if parts[0] == "mid_block" else ".".join(parts[:2])


def _tokens(latent_hw: tuple[int, int], halvings: int) -> int:
    h, w = latent_hw
    for _ in range(halvings):  # stride-2 convolutions round odd sizes up
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h * w


def record_bytes(
    unet, spec: RecordSpec, faces: int, latent_hw: tuple[int, int], steps: int, dtype
) -> int:
    """Bytes a BranchRecord of `faces` faces holds after `steps` steps (before any of it
    exists: the restore plans where it lives from this)."""
    scales = layer_scales(unet)
    size = dtype.itemsize
    per_step = 0
    for half in HALVES:
        gated, cross = spec.layers(half)
        for name in gated + cross:
            attn = unet.get_submodule(name.removesuffix(".processor"))
            tokens = _tokens(latent_hw, scales[_block_prefix(name)])
            if name in gated:
                inner = attn.to_q.out_features if spec.mode == "map" else attn.to_v.out_features
                per_step += 2 * (2 if spec.mode == "map" else 1) * tokens * inner
            else:
                n = len(spec.edited_columns)
                n += len(spec.original_columns) if half in spec.replace_halves else 0
                per_step += tokens * attn.heads * n
    return per_step * size * faces * steps
