"""Entanglement attention processors (engine/attention.py, paper eq. 7-9)."""

from __future__ import annotations

import pytest
import torch

from engine.diffusion.attention import (
    EntanglementAttention,
    GateConfig,
    block_of,
    gate_self_attention,
    region_weights,
    replace_cross_attention_columns,
    resize_mask_to_tokens,
)
from tests.fixtures.unets import small_attention_unet

FACES = 2
H, W = 16, 16
TOKENS = 7  # text length of the test prompts
T = torch.tensor(500)


# ------------------------------------------------------------------------------------
# fixtures and helpers
# ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unet():
    return small_attention_unet()


def idx(half: int, branch: int, face: int, faces: int = FACES) -> int:
    return half * 3 * faces + branch * faces + face


def batch(seed: int = 1, faces: int = FACES, h: int = H, w: int = W):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(6 * faces, 4, h, w, generator=g)
    text = torch.randn(6 * faces, TOKENS, 32, generator=g)
    return latents, text


def masks(faces: int = FACES, h: int = H, w: int = W):
    """Different masks per face, with all four regions present."""
    face = torch.zeros(faces, 1, h, w)
    element = torch.zeros(faces, 1, h, w)
    face[0, :, 2 : h // 2 + 4, 2 : w // 2 + 4] = 1
    element[0, :, h // 2 :, 4:] = 1
    if faces > 1:
        face[1, :, h // 4 :, : w // 2] = 1
        element[1, :, : h // 2, w // 4 :] = 1
    return face, element


def config(**kw) -> GateConfig:
    face, element = masks()
    base = dict(faces=FACES, face_mask=face, element_mask=element)
    base.update(kw)
    return GateConfig(**base)


def run(unet, latents, text, cfg: GateConfig | None = None):
    with torch.no_grad():
        if cfg is None:
            return unet(latents, T, text).sample
        with EntanglementAttention(unet, cfg):
            return unet(latents, T, text).sample


def split(out: torch.Tensor, faces: int = FACES) -> torch.Tensor:
    return out.view(2, 3, faces, *out.shape[1:])


def softmax_rows(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).softmax(-1)


def manual_attention(attn, hidden, encoder, edit_maps, faces: int = FACES):
    """Reference attention written without diffusers' reshape helpers: maps as
    (half, branch, face, head, Q, K); `edit_maps` returns the maps to use."""
    b, q_len, _ = hidden.shape
    source = hidden if encoder is None else encoder
    heads = attn.heads

    def split_heads(x):
        x = x.view(b, x.shape[1], heads, -1).permute(0, 2, 1, 3)
        return x.reshape(2, 3, faces, heads, x.shape[2], -1)

    q = split_heads(attn.to_q(hidden))
    k = split_heads(attn.to_k(source))
    v = split_heads(attn.to_v(source))
    maps = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1)
    out = edit_maps(maps) @ v
    out = out.reshape(b, heads, q_len, -1).permute(0, 2, 1, 3).reshape(b, q_len, -1)
    return attn.to_out[1](attn.to_out[0](out))


def first_attn(unet, which: str):
    return getattr(unet.down_blocks[0].attentions[0].transformer_blocks[0], which)


# ------------------------------------------------------------------------------------
# pure functions
# ------------------------------------------------------------------------------------


def test_block_of():
    assert block_of("down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor") == "down"
    assert block_of("mid_block.attentions.0.transformer_blocks.0.attn1.processor") == "mid"
    assert block_of("up_blocks.1.attentions.1.transformer_blocks.0.attn2.processor") == "up"
    with pytest.raises(ValueError, match="UNet part"):
        block_of("encoder.attn1.processor")


def test_region_weights_binary_masks_give_exact_regions():
    f = torch.tensor([1.0, 1.0, 0.0, 0.0])
    e = torch.tensor([0.0, 1.0, 1.0, 0.0])
    r = region_weights(f, e)
    assert r["face_only"].tolist() == [1, 0, 0, 0]
    assert r["overlap"].tolist() == [0, 1, 0, 0]
    assert r["element_only"].tolist() == [0, 0, 1, 0]
    assert r["rest"].tolist() == [0, 0, 0, 1]
    soft = region_weights(torch.rand(50), torch.rand(50))
    assert torch.allclose(sum(soft.values()), torch.ones(50))


def test_gate_self_attention_rows_from_the_right_source():
    # rows: 0 face only, 1 element only, 2 overlap, 3 rest; batch dims (2, 3)
    map_o, map_e, map_t = (softmax_rows(2, 3, 4, 9, seed=s) for s in range(3))
    f = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(4, 1)
    e = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(4, 1)
    regions = region_weights(f, e)
    out = gate_self_attention(map_o, map_e, map_t, regions, (0.2, 0.4))
    assert out.shape == map_t.shape
    torch.testing.assert_close(out[..., 0, :], map_o[..., 0, :])
    torch.testing.assert_close(out[..., 1, :], map_e[..., 1, :])
    # overlap weights apply, then the row is renormalised: (0.2 o + 0.4 e) / 0.6
    mix = (0.2 * map_o[..., 2, :] + 0.4 * map_e[..., 2, :]) / 0.6
    torch.testing.assert_close(out[..., 2, :], mix)
    torch.testing.assert_close(out[..., 3, :], map_t[..., 3, :])
    torch.testing.assert_close(out.sum(-1), torch.ones(2, 3, 4))
    # default weights in the overlap: plain average, already normalised
    half = gate_self_attention(map_o, map_e, map_t, regions, (0.5, 0.5))
    torch.testing.assert_close(half[..., 2, :], 0.5 * (map_o[..., 2, :] + map_e[..., 2, :]))
    # degenerate overlap weights (0, 0): the row keeps the target's own map, no NaN
    zero = gate_self_attention(map_o, map_e, map_t, regions, (0.0, 0.0))
    torch.testing.assert_close(zero[..., 2, :], map_t[..., 2, :])
    # soft masks: rows still sum to 1
    soft = region_weights(torch.rand(4, 1), torch.rand(4, 1))
    torch.testing.assert_close(
        gate_self_attention(map_o, map_e, map_t, soft, (0.3, 0.9)).sum(-1), torch.ones(2, 3, 4)
    )


def test_gate_self_attention_keeps_fp16():
    maps = [softmax_rows(3, 5, 6, seed=s).half() for s in range(3)]
    regions = region_weights(torch.rand(5, 1), torch.rand(5, 1))
    out = gate_self_attention(*maps, regions, (0.5, 0.5))
    assert out.dtype == torch.float16
    assert torch.allclose(out.float().sum(-1), torch.ones(3, 5), atol=2e-3)


def test_replace_cross_attention_columns_exact_columns_only():
    map_o, map_e, map_t = (softmax_rows(2, 5, 10, seed=s) for s in range(3))
    before = map_t.clone()
    out = replace_cross_attention_columns(map_t, map_o, map_e, [(1, 2)], [(5, 7), (6, 3)])
    torch.testing.assert_close(out[..., 1], map_o[..., 2], rtol=0, atol=0)
    torch.testing.assert_close(out[..., 5], map_e[..., 7], rtol=0, atol=0)
    torch.testing.assert_close(out[..., 6], map_e[..., 3], rtol=0, atol=0)
    untouched = [c for c in range(10) if c not in (1, 5, 6)]
    torch.testing.assert_close(out[..., untouched], map_t[..., untouched], rtol=0, atol=0)
    torch.testing.assert_close(map_t, before, rtol=0, atol=0)  # input not modified
    assert not torch.allclose(out.sum(-1), torch.ones(2, 5))  # not renormalised
    with pytest.raises(ValueError, match="outside"):
        replace_cross_attention_columns(map_t, map_o, map_e, [(10, 0)], [])


def test_resize_mask_to_tokens_non_square():
    mask = torch.zeros(2, 1, 8, 12)
    mask[0, :, :4, :6] = 1  # top-left quarter
    mask[1, :, 1:3, :] = 1
    same = resize_mask_to_tokens(mask, 96)
    assert same.shape == (2, 96, 1)
    torch.testing.assert_close(same, mask.reshape(2, 96, 1))
    half = resize_mask_to_tokens(mask, 24)  # 4 x 6 grid, row-major
    assert half.shape == (2, 24, 1)
    grid = half.view(2, 4, 6)
    assert grid[0, :2, :3].eq(1).all() and grid[0, 2:].eq(0).all() and grid[0, :, 3:].eq(0).all()
    torch.testing.assert_close(grid[1, 0], torch.full((6,), 0.5))  # area average of rows 0-1
    quarter = resize_mask_to_tokens(mask, 6)  # 2 x 3
    # 4 x 4 cells: the 4 x 6 quarter fills cell (0, 0) and half of cell (0, 1)
    torch.testing.assert_close(quarter[0].view(2, 3), torch.tensor([[1.0, 0.5, 0], [0, 0, 0]]))
    # odd sizes: the UNet's stride-2 convs round up: 9 x 7 -> 5 x 4 -> 3 x 2
    odd = torch.rand(1, 1, 9, 7)
    assert resize_mask_to_tokens(odd, 20).shape == (1, 20, 1)
    assert resize_mask_to_tokens(odd, 6).shape == (1, 6, 1)
    with pytest.raises(ValueError, match="No integer grid"):
        resize_mask_to_tokens(mask, 7)


def test_config_validation(unet):
    with pytest.raises(ValueError, match="mode"):
        EntanglementAttention(unet, config(mode="rows"))
    with pytest.raises(ValueError, match="gate_blocks"):
        EntanglementAttention(unet, config(gate_blocks=("middle",)))
    with pytest.raises(ValueError, match="face_mask"):
        EntanglementAttention(unet, config(face_mask=torch.zeros(3, 1, H, W)))
    with pytest.raises(ValueError, match="query_chunk"):
        EntanglementAttention(unet, config(query_chunk=0))


# ------------------------------------------------------------------------------------
# processors in a UNet
# ------------------------------------------------------------------------------------


def test_sources_unchanged_target_changes(unet):
    latents, text = batch()
    ref = run(unet, latents, text)
    for mode in ("map", "output"):
        cfg = config(
            mode=mode,
            gate_blocks=("down", "mid", "up"),
            original_token_columns=[(1, 1)],
            edited_token_columns=[(4, 5), (5, 4)],
        )
        out = run(unet, latents, text, cfg)
        r, o = split(ref), split(out)
        # original and edited branches, both CFG halves: plain attention
        torch.testing.assert_close(o[:, :2], r[:, :2], rtol=0, atol=1e-5)
        for half in (0, 1):
            for face in range(FACES):
                assert (o[half, 2, face] - r[half, 2, face]).abs().max() > 1e-3, (mode, half, face)


def test_no_gating_equals_default_processors(unet):
    latents, text = batch(seed=2)
    ref = run(unet, latents, text)
    zeros = torch.zeros(FACES, 1, H, W)
    for mode in ("map", "output"):
        cfg = config(
            face_mask=zeros,
            element_mask=zeros,
            mode=mode,
            cross_attention=False,
            gate_blocks=("down", "mid", "up"),
        )
        torch.testing.assert_close(run(unet, latents, text, cfg), ref, rtol=0, atol=1e-5)
    # cross-attention maps materialised (capture on) but nothing replaced: also plain
    cfg = config(face_mask=zeros, element_mask=zeros, capture_tokens=[2], query_chunk=50)
    torch.testing.assert_close(run(unet, latents, text, cfg), ref, rtol=0, atol=1e-5)


def test_map_processor_equals_sdpa_at_layer_level(unet):
    from diffusers.models.attention_processor import AttnProcessor2_0

    attn = first_attn(unet, "attn1")
    hidden = torch.randn(6 * FACES, H * W, 32)
    with torch.no_grad():
        attn.set_processor(AttnProcessor2_0())
        ref = attn(hidden)
        zeros = torch.zeros(FACES, 1, H, W)
        with EntanglementAttention(unet, config(face_mask=zeros, element_mask=zeros)):
            out = attn(hidden)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_gated_layers_follow_gate_blocks(unet):
    names = {
        blocks: EntanglementAttention(unet, config(gate_blocks=blocks)).gated_layer_names()
        for blocks in [("down",), ("mid",), ("up",), ("down", "mid")]
    }
    assert names[("down",)] == ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor"]
    assert names[("mid",)] == ["mid_block.attentions.0.transformer_blocks.0.attn1.processor"]
    assert len(names[("up",)]) == 2 and all(n.startswith("up_blocks.") for n in names[("up",)])
    assert sorted(names[("down", "mid")]) == sorted(names[("down",)] + names[("mid",)])
    assert all(n.endswith(".attn1.processor") for v in names.values() for n in v)
    assert EntanglementAttention(unet, config(self_attention=False)).gated_layer_names() == []

    from diffusers.models.attention_processor import AttnProcessor2_0

    with EntanglementAttention(unet, config(gate_blocks=("up",), cross_attention=False)) as ea:
        procs = unet.attn_processors
        plain = [n for n, p in procs.items() if isinstance(p, AttnProcessor2_0)]
        assert sorted(plain) == sorted(set(procs) - set(ea.gated_layer_names()))

    latents, text = batch(seed=3)
    down = run(unet, latents, text, config(gate_blocks=("down",), cross_attention=False))
    up = run(unet, latents, text, config(gate_blocks=("up",), cross_attention=False))
    assert (split(down)[:, 2] - split(up)[:, 2]).abs().max() > 1e-3
    torch.testing.assert_close(split(down)[:, :2], split(up)[:, :2], rtol=0, atol=1e-5)


def test_self_attention_known_answer_per_half_branch_face(unet):
    """Layer-level: the target's rows use the SAME half's original/edited maps, values
    stay the target's own; original/edited samples are plain attention."""
    attn = first_attn(unet, "attn1")
    hidden = torch.randn(6 * FACES, H * W, 32)
    face, element = masks()
    cfg = config(overlap=(0.3, 0.6), query_chunk=100)
    regions = region_weights(
        resize_mask_to_tokens(face, H * W)[None, :, None],
        resize_mask_to_tokens(element, H * W)[None, :, None],
    )

    def expected_maps(maps):
        gated = gate_self_attention(maps[:, 0], maps[:, 1], maps[:, 2], regions, (0.3, 0.6))
        return torch.cat([maps[:, :2], gated[:, None]], dim=1)

    with torch.no_grad():
        want = manual_attention(attn, hidden, None, expected_maps)
        with EntanglementAttention(unet, cfg):
            got = attn(hidden)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)

    # face mask everywhere: the target's map is exactly the original's (map_o @ V_t)
    ones, zeros = torch.ones(FACES, 1, H, W), torch.zeros(FACES, 1, H, W)
    with torch.no_grad():
        want = manual_attention(
            attn, hidden, None, lambda m: torch.stack([m[:, 0], m[:, 1], m[:, 0]], dim=1)
        )
        with EntanglementAttention(unet, config(face_mask=ones, element_mask=zeros)):
            got = attn(hidden)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_output_mode_known_answer(unet):
    attn = first_attn(unet, "attn1")
    hidden = torch.randn(6 * FACES, H * W, 32)
    face, element = masks()
    with torch.no_grad():
        plain = manual_attention(attn, hidden, None, lambda m: m)
        # to_out is affine and the weights are convex, so mixing before or after it agrees
        f = resize_mask_to_tokens(face, H * W)
        e = resize_mask_to_tokens(element, H * W)
        r = region_weights(f, e)
        lo, le = 0.25, 0.75
        p = split(plain)
        mixed = r["face_only"] * p[:, 0] + r["element_only"] * p[:, 1]
        mixed = mixed + r["overlap"] * (lo * p[:, 0] + le * p[:, 1]) + r["rest"] * p[:, 2]
        want = torch.cat([p[:, :2], mixed[:, None]], dim=1).flatten(0, 2)
        with EntanglementAttention(unet, config(mode="output", overlap=(lo, le))):
            got = attn(hidden)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("halves", ["cond", "both"])
def test_cross_attention_known_answer(unet, halves):
    """eq. 9 replaces the target's token columns in the conditional CFG half only (the
    unconditional half's token positions are null-text padding); "both" is the ablation."""
    attn = first_attn(unet, "attn2")
    hidden = torch.randn(6 * FACES, H * W, 32)
    text = torch.randn(6 * FACES, TOKENS, 32)
    cols_o, cols_e = [(1, 2)], [(4, 5), (5, 3)]

    def expected_maps(maps):  # (half, branch, face, head, Q, K)
        target = maps[:, 2].clone()
        replaced = replace_cross_attention_columns(
            maps[:, 2], maps[:, 0], maps[:, 1], cols_o, cols_e
        )
        target[1] = replaced[1]
        if halves == "both":
            target[0] = replaced[0]
        return torch.cat([maps[:, :2], target[:, None]], dim=1)

    with torch.no_grad():
        want = manual_attention(attn, hidden, text, expected_maps)
        plain = manual_attention(attn, hidden, text, lambda m: m)
        cfg = config(
            original_token_columns=cols_o,
            edited_token_columns=cols_e,
            query_chunk=64,
            cross_attention_halves=halves,
        )
        with EntanglementAttention(unet, cfg):
            got = attn(hidden, encoder_hidden_states=text)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # which half changed: the conditional target always, the unconditional one only in "both"
    changed = (split(got) - split(plain)).abs().amax(dim=(-2, -1))  # (half, branch, face)
    assert bool((changed[1, 2] > 1e-4).all())
    assert bool((changed[0, 2] > 1e-4).all()) == (halves == "both")
    assert float(changed[:, :2].max()) < 1e-5


def test_both_cfg_halves_gated(unet):
    """Element mask everywhere: target rows take the edited branch's maps. In the
    unconditional half the target's inputs equal the edited's, so the gated target must
    equal the edited output there (it would not if the other half's maps were used); in
    the conditional half they differ, and gating changes the target there too."""
    latents, text = batch(seed=4)
    for face in range(FACES):
        u_e, u_t = idx(0, 1, face), idx(0, 2, face)
        latents[u_t], text[u_t] = latents[u_e], text[u_e]
    ones, zeros = torch.ones(FACES, 1, H, W), torch.zeros(FACES, 1, H, W)
    cfg = config(
        face_mask=zeros, element_mask=ones, gate_blocks=("down", "mid", "up"), cross_attention=False
    )
    ungated = split(run(unet, latents, text))
    gated = split(run(unet, latents, text, cfg))
    torch.testing.assert_close(gated[0, 2], gated[0, 1], rtol=0, atol=1e-5)
    assert (gated[1, 2] - gated[1, 1]).abs().max() > 1e-3
    assert (gated[1, 2] - ungated[1, 2]).abs().max() > 1e-3

    # mirror: target equals edited in the CONDITIONAL half only
    latents, text = batch(seed=5)
    for face in range(FACES):
        c_e, c_t = idx(1, 1, face), idx(1, 2, face)
        latents[c_t], text[c_t] = latents[c_e], text[c_e]
    gated = split(run(unet, latents, text, cfg))
    torch.testing.assert_close(gated[1, 2], gated[1, 1], rtol=0, atol=1e-5)
    assert (gated[0, 2] - gated[0, 1]).abs().max() > 1e-3


def test_face_mask_everywhere_reproduces_original(unet):
    """Target latent and prompt = original's, edited branch different: with the face mask
    all ones the target copies the original's maps, so the whole prediction equals the
    original's (it would not if the edited branch's maps were taken)."""
    latents, text = batch(seed=6)
    for half in (0, 1):
        for face in range(FACES):
            latents[idx(half, 2, face)] = latents[idx(half, 0, face)]
            text[idx(half, 2, face)] = text[idx(half, 0, face)]
    ones, zeros = torch.ones(FACES, 1, H, W), torch.zeros(FACES, 1, H, W)
    cfg = config(
        face_mask=ones,
        element_mask=zeros,
        gate_blocks=("down", "mid", "up"),
        original_token_columns=[(c, c) for c in range(TOKENS)],
    )
    out = split(run(unet, latents, text, cfg))
    torch.testing.assert_close(out[:, 2], out[:, 0], rtol=0, atol=1e-5)
    # the same setup with the ELEMENT mask everywhere does not
    cfg = config(face_mask=zeros, element_mask=ones, gate_blocks=("down", "mid", "up"))
    out = split(run(unet, latents, text, cfg))
    assert (out[:, 2] - out[:, 0]).abs().max() > 1e-3


def test_query_chunking_is_exact(unet):
    latents, text = batch(seed=7)
    kw = dict(
        gate_blocks=("down", "mid", "up"),
        original_token_columns=[(1, 1)],
        edited_token_columns=[(3, 4)],
        capture_tokens=[3, 4],
    )
    whole = EntanglementAttention(unet, config(query_chunk=None, **kw))
    chunked = EntanglementAttention(unet, config(query_chunk=50, **kw))
    with torch.no_grad():
        with whole:
            a = unet(latents, T, text).sample
        with chunked:
            b = unet(latents, T, text).sample
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # BLAS blocking only
    torch.testing.assert_close(whole.captured_maps(), chunked.captured_maps(), rtol=0, atol=1e-5)


def test_captured_maps_shape_range_and_source(unet):
    latents, text = batch(seed=8)
    cfg = config(capture_tokens=[2, 5], cross_attention=False)
    ea = EntanglementAttention(unet, cfg)
    assert ea.captured_maps() is None
    with torch.no_grad(), ea:
        unet(latents, T, text)
        unet(latents, T, text)  # two "steps"
    maps = ea.captured_maps()
    assert maps.shape == (FACES, 2, H, W)
    assert maps.min() >= 0
    torch.testing.assert_close(maps.amax(dim=(-2, -1)), torch.ones(FACES, 2))
    assert len(ea.cross_layer_names()) == 4  # every attn2 (down, mid, 2 x up)

    # only the edited branch's conditional half counts
    def capture(lat, txt):
        with torch.no_grad(), ea:
            unet(lat, T, txt)
        return ea.captured_maps()

    base = capture(latents, text)
    other = text.clone()
    for b in (0, 2):
        for half in (0, 1):
            other[idx(half, b, 0)] = torch.randn(TOKENS, 32)
    other[idx(0, 1, 0)] = torch.randn(TOKENS, 32)
    torch.testing.assert_close(capture(latents, other), base)
    other[idx(1, 1, 0)] = torch.randn(TOKENS, 32)
    changed = capture(latents, other)
    assert (changed[0] - base[0]).abs().max() > 1e-3
    torch.testing.assert_close(changed[1], base[1])


def test_processors_restored_on_exit_and_exception(unet):
    before = unet.attn_processors
    ea = EntanglementAttention(unet, config(gate_blocks=("down", "mid", "up")))
    with ea:
        during = unet.attn_processors
        assert all(during[n] is not before[n] for n in ea.gated_layer_names())
        with pytest.raises(RuntimeError, match="re-entrant"):
            ea.__enter__()
    assert all(unet.attn_processors[n] is before[n] for n in before)
    with pytest.raises(KeyError):
        with ea:
            raise KeyError("boom")
    assert all(unet.attn_processors[n] is before[n] for n in before)
    # a failing UNet call (wrong batch) also leaves the model as it was
    latents, text = batch(faces=1)  # 6 samples, config says 2 faces -> 12
    with pytest.raises(ValueError, match=r"2 \(CFG halves\) x 3"):
        with torch.no_grad(), ea:
            unet(latents, T, text)
    assert all(unet.attn_processors[n] is before[n] for n in before)


def test_non_square_latent(unet):
    h, w = 16, 24
    latents, text = batch(seed=9, h=h, w=w)
    face, element = masks(h=h, w=w)
    ref = split(run(unet, latents, text))
    cfg = GateConfig(
        faces=FACES,
        face_mask=face,
        element_mask=element,
        gate_blocks=("down", "mid", "up"),
        capture_tokens=[1],
    )
    ea = EntanglementAttention(unet, cfg)
    with torch.no_grad(), ea:
        out = split(unet(latents, T, text).sample)
    torch.testing.assert_close(out[:, :2], ref[:, :2], rtol=0, atol=1e-5)
    assert (out[:, 2] - ref[:, 2]).abs().max() > 1e-3
    assert ea.captured_maps().shape == (FACES, 1, h, w)


def test_fp16_keeps_dtype_and_matches_fp32(unet):
    import copy

    attn32 = first_attn(unet, "attn1")
    attn16 = copy.deepcopy(attn32).half()
    hidden = torch.randn(6 * FACES, H * W, 32)
    cfg = config()
    ea = EntanglementAttention(unet, cfg)
    processor = ea.processors()["down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor"]
    with torch.no_grad():
        out32 = processor(attn32, hidden)
        out16 = processor(attn16, hidden.half())
    assert out16.dtype == torch.float16 and out32.dtype == torch.float32
    torch.testing.assert_close(out16.float(), out32, rtol=0, atol=2e-2)


# ------------------------------------------------------------------------------------
# gating through SDPA (issue 13): equal to the map-level reference, no maps
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlap", [(0.3, 0.6), (0.0, 0.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_sdpa_gating_equals_the_map_reference(unet, overlap, dtype):
    """The fused path equals the explicit maps of eq. 7-8, also in overlap rows whose
    weights are both 0 (lambda = 0, 0: the target keeps its own row there)."""
    attn = first_attn(unet, "attn1")
    hidden = torch.randn(6 * FACES, H * W, 32, generator=torch.Generator().manual_seed(4))
    results = {}
    layer = attn.to(dtype)
    try:
        with torch.no_grad():
            for impl in ("maps", "sdpa"):
                cfg = config(overlap=overlap, self_attention_impl=impl, query_chunk=100)
                with EntanglementAttention(unet, cfg):
                    results[impl] = layer(hidden.to(dtype)).float()
    finally:
        attn.to(torch.float32)
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    torch.testing.assert_close(results["sdpa"], results["maps"], rtol=0, atol=tol)
    # the overlap rows really are gated (not the plain target rows)
    plain = manual_attention(attn, hidden, None, lambda m: m)
    assert (split(results["sdpa"])[:, 2] - split(plain)[:, 2]).abs().max() > 1e-3


def test_sdpa_gating_whole_unet_equals_maps_and_builds_no_map(unet):
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        biggest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                Largest.biggest = max(Largest.biggest, out.numel())
            return out

    latents, text = batch(seed=5)
    base = dict(gate_blocks=("down", "mid", "up"), cross_attention=False, query_chunk=None)
    sizes = {}
    for impl in ("maps", "sdpa"):
        Largest.biggest = 0
        with Largest():
            sizes[impl] = run(unet, latents, text, config(self_attention_impl=impl, **base))
        sizes[impl + " largest"] = Largest.biggest
    torch.testing.assert_close(sizes["sdpa"], sizes["maps"], rtol=0, atol=1e-5)
    one_map = 6 * FACES * unet.config.attention_head_dim * (H * W) ** 2  # all samples, heads
    assert sizes["maps largest"] >= one_map  # the control: the reference does build it
    assert sizes["sdpa largest"] < one_map / 4


def test_impl_is_validated():
    with pytest.raises(ValueError, match="self_attention_impl"):
        config(self_attention_impl="flash").validate()
