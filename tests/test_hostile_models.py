"""A downloaded model folder is hostile input (issue 23, second wave): each case is refused
with a ModelError naming the file, before anything large is built or read.

Each test starts from a copy of the tiny SD folder that loads, and changes one thing.
"""

from __future__ import annotations

import json
import os
import shutil
import struct

import pytest

from engine.errors import ModelError
from engine.models import safety
from engine.models.loading import load_sd_model


@pytest.fixture
def model_copy(tiny_sd_dir, tmp_path):
    folder = tmp_path / "fine-tune"
    shutil.copytree(tiny_sd_dir, folder)
    return folder


def _edit_json(path, **changes):
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


def _write_safetensors_header(path, header: dict, data_bytes: int = 0) -> None:
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.write(b"\0" * data_bytes)


def test_the_untouched_copy_loads(model_copy):
    """The baseline every case below changes one thing of."""
    assert load_sd_model(model_copy).unet is not None


@pytest.mark.parametrize(
    ("component", "key", "value"),
    [
        ("unet", "block_out_channels", [100000, 64]),
        ("unet", "layers_per_block", 1_000_000),
        ("vae", "block_out_channels", [20000, 64]),
        ("text_encoder", "num_hidden_layers", 100_000),
        ("unet", "block_out_channels", [32, 64, 64, 64, 64, 64, 64, 64, 64]),
        ("unet", "layers_per_block", 1.5),
    ],
)
def test_declared_sizes_beyond_any_sd_model_are_refused_before_building(
    model_copy, component, key, value
):
    config = model_copy / component / "config.json"
    _edit_json(config, **{key: value})
    with pytest.raises(ModelError) as caught:
        load_sd_model(model_copy)
    message = str(caught.value)
    assert str(config) in message
    assert key in message
    # the bounds refuse it, not a later mismatch with the weights (which would mean it was built)
    assert "each must be a whole number" in message or "lists 9 values" in message


def test_a_tokenizer_linked_to_a_device_is_refused_by_name(model_copy):
    tokenizer = next((model_copy / "tokenizer").glob("*.json"))
    tokenizer.unlink()
    os.symlink("/dev/urandom", tokenizer)
    with pytest.raises(ModelError, match="not a regular file") as caught:
        load_sd_model(model_copy)
    assert str(tokenizer) in str(caught.value)


def test_a_fifo_in_the_folder_is_refused_without_blocking(model_copy):
    fifo = model_copy / "tokenizer" / "tokenizer.json"
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)
    with pytest.raises(ModelError, match="not a regular file") as caught:
        load_sd_model(model_copy)
    assert str(fifo) in str(caught.value)


def test_a_link_out_of_the_folder_is_refused(model_copy, tmp_path):
    outside = tmp_path / "elsewhere.json"
    vocab = sorted((model_copy / "tokenizer").glob("*.json"))[0]
    shutil.copy(vocab, outside)
    vocab.unlink()
    os.symlink(outside, vocab)
    with pytest.raises(ModelError, match="outside the model folder") as caught:
        load_sd_model(model_copy)
    assert str(vocab) in str(caught.value)


def test_a_hub_cache_snapshot_linking_into_its_blobs_loads(model_copy, tmp_path):
    """The Hugging Face cache layout: snapshots/<rev>/x links to ../../blobs/<hash>."""
    repo = tmp_path / "models--someone--fine-tune"
    snapshot = repo / "snapshots" / "0123abc"
    blobs = repo / "blobs"
    blobs.mkdir(parents=True)
    for n, path in enumerate(sorted(p for p in model_copy.rglob("*") if p.is_file())):
        rel = path.relative_to(model_copy)
        blob = blobs / f"blob{n}"
        shutil.copy(path, blob)
        (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, (snapshot / rel).parent), snapshot / rel)
    assert load_sd_model(snapshot).unet is not None


def test_an_oversized_tokenizer_file_is_refused_from_its_size(model_copy):
    big = model_copy / "tokenizer" / "tokenizer.json"
    with open(big, "wb") as f:
        f.truncate(safety.MAX_SMALL_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ModelError, match="far too large for a model's tokenizer file") as caught:
        load_sd_model(model_copy)
    assert str(big) in str(caught.value)


def _unet_weights(folder):
    return folder / "unet" / "diffusion_pytorch_model.safetensors"


def test_weights_missing_half_the_tensors_name_what_is_missing(model_copy):
    from safetensors.torch import load_file, save_file

    weights = _unet_weights(model_copy)
    tensors = load_file(weights)
    names = sorted(tensors)
    kept = {k: tensors[k] for k in names[: len(names) // 2]}
    save_file(kept, weights)
    with pytest.raises(ModelError) as caught:
        load_sd_model(model_copy)
    message = str(caught.value)
    assert f"lack {len(names) - len(kept)} of the {len(names)} tensors" in message
    assert names[-1] in message or names[len(names) // 2] in message
    assert "meta tensor" not in message


def test_a_tensor_of_another_shape_is_named_with_both_shapes(model_copy):
    from safetensors.torch import load_file, save_file

    weights = _unet_weights(model_copy)
    tensors = load_file(weights)
    original = tuple(tensors["conv_in.weight"].shape)
    tensors["conv_in.weight"] = tensors["conv_in.weight"][:-1].clone()
    save_file(tensors, weights)
    with pytest.raises(ModelError) as caught:
        load_sd_model(model_copy)
    message = str(caught.value)
    shorter = (original[0] - 1, *original[1:])
    assert f"conv_in.weight as {original} but the weights hold {shorter}" in message


def test_a_header_listing_too_many_tensors_is_refused_from_the_header(model_copy):
    header = {
        f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(60_000)
    }
    _write_safetensors_header(_unet_weights(model_copy), header)
    with pytest.raises(ModelError, match="lists 60,000 tensors"):
        load_sd_model(model_copy)


def test_a_header_claiming_more_bytes_than_the_cap_is_refused_unread(model_copy):
    weights = _unet_weights(model_copy)
    with open(weights, "wb") as f:
        f.write(struct.pack("<Q", safety.MAX_HEADER_BYTES + 1))
        f.truncate(safety.MAX_HEADER_BYTES + 64)  # sparse
    with pytest.raises(ModelError, match="header claims") as caught:
        load_sd_model(model_copy)
    assert str(weights) in str(caught.value)


def test_a_config_with_a_key_twice_is_refused(model_copy):
    config = model_copy / "vae" / "config.json"
    text = config.read_text()
    config.write_text(text.replace("{", '{"latent_channels": 4, ', 1))
    with pytest.raises(ModelError, match="appears twice") as caught:
        load_sd_model(model_copy)
    assert str(config) in str(caught.value)


def test_a_single_file_checkpoint_header_is_read_with_the_same_caps(tmp_path):
    from engine.models.checks import single_file_keys

    path = tmp_path / "model.safetensors"
    header = {
        f"t{i}": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for i in range(60_000)
    }
    _write_safetensors_header(path, header, data_bytes=4)
    with pytest.raises(ModelError, match="lists 60,000 tensors"):
        single_file_keys(path)


def test_bounds_accept_sd14s_own_numbers():
    """The bounds are far above a real SD 1.4 (its configs' numbers), so no real model is
    refused by them."""
    safety.check_config_bounds(
        {"block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
         "cross_attention_dim": 768, "attention_head_dim": 8, "sample_size": 64},
        safety.UNET_BOUNDS, "unet",
    )  # fmt: skip
    safety.check_config_bounds(
        {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
         "latent_channels": 4, "sample_size": 512},
        safety.VAE_BOUNDS, "vae",
    )  # fmt: skip
    safety.check_config_bounds(
        {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
         "num_attention_heads": 12, "max_position_embeddings": 77, "vocab_size": 49408},
        safety.TEXT_BOUNDS, "text_encoder",
    )  # fmt: skip
