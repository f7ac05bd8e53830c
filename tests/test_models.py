"""engine.models.loading on tiny SD 1.x models: loading, fingerprints, low-memory, every bad input.

No test touches the network: hub lookups run with HF_HUB_OFFLINE and a socket guard.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.errors import (
    Cancelled,
    DownloadError,
    ModelError,
    ModelNotFoundError,
    UnsafeCheckpointError,
)
from engine.models import loading as models
from engine.models.loading import LowMemory, load_sd_model
from engine.resources import sd15_config_dir

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if anything tries to open a connection."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True, raising=False)


@pytest.fixture(scope="module")
def tiny_model(tiny_sd_dir):
    return load_sd_model(tiny_sd_dir)


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------
# loading a folder
# ---------------------------------------------------------------------------------------
def test_load_folder_components(tiny_model, tiny_sd_dir):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    m = tiny_model
    assert isinstance(m.unet, UNet2DConditionModel)
    assert isinstance(m.vae, AutoencoderKL)
    assert isinstance(m.text_encoder, CLIPTextModel)
    assert isinstance(m.tokenizer, CLIPTokenizer)
    assert m.source_kind == "folder"
    assert m.model_id == str(tiny_sd_dir)
    assert m.device == torch.device("cpu") and m.dtype == torch.float32
    assert m.vae_scaling_factor == pytest.approx(0.18215)
    for module in (m.unet, m.vae, m.text_encoder):
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
        assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in module.parameters())

    ref = DDIMScheduler.from_pretrained(str(tiny_sd_dir), subfolder="scheduler")
    assert m.alphas_cumprod.dtype == torch.float64 and m.alphas_cumprod.device.type == "cpu"
    assert m.alphas_cumprod.shape == (1000,) and m.num_train_timesteps == 1000
    torch.testing.assert_close(m.alphas_cumprod, ref.alphas_cumprod.double(), atol=1e-6, rtol=0)
    assert torch.all(m.alphas_cumprod[1:] < m.alphas_cumprod[:-1])

    # The real CLIP tokenizer: "a photo of a man" -> 49406 320 1125 539 320 786 49407
    ids = m.tokenizer("a photo of a man").input_ids
    assert ids == [49406, 320, 1125, 539, 320, 786, 49407]


def test_loaded_model_runs(tiny_model):
    m = tiny_model
    tokens = m.tokenizer(
        ["a photo of a face"], padding="max_length", max_length=77, return_tensors="pt"
    )
    with torch.no_grad(), m.use("text_encoder") as te:
        emb = te(tokens.input_ids.to(m.device))[0]
    assert emb.shape == (1, 77, m.unet.config.cross_attention_dim)
    latent = torch.randn(1, 4, 16, 16)
    with torch.no_grad(), m.use("unet") as unet:
        eps = unet(latent, 500, encoder_hidden_states=emb).sample
    assert eps.shape == latent.shape and torch.isfinite(eps).all()


def test_fingerprint_stable_and_distinct(tiny_model, tiny_sd_dir, exact_sd_dir):
    again = load_sd_model(str(tiny_sd_dir))
    assert again.fingerprint == tiny_model.fingerprint
    assert len(tiny_model.fingerprint) == 16
    int(tiny_model.fingerprint, 16)
    other = load_sd_model(exact_sd_dir)
    assert other.fingerprint != tiny_model.fingerprint


def test_fingerprint_changes_with_weights(tiny_sd_dir, tmp_path):
    copy = copy_model(tiny_sd_dir, tmp_path / "m")
    before = models.fingerprint_folder(copy)
    assert before == models.fingerprint_folder(tiny_sd_dir)
    weights = copy / "vae" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # same size, one byte of the last tensor changed
    weights.write_bytes(bytes(data))
    assert models.fingerprint_folder(copy) != before


def test_describe(tiny_model):
    d = tiny_model.describe()
    assert d == {
        "model_id": tiny_model.model_id,
        "fingerprint": tiny_model.fingerprint,
        "device": "cpu",
        "dtype": "float32",
        "source_kind": "folder",
    }
    json.dumps(d)


# ---------------------------------------------------------------------------------------
# low memory
# ---------------------------------------------------------------------------------------
def test_low_memory_on_cpu_is_harmless(tiny_sd_dir):
    low = LowMemory(attention_slicing=True, vae_tiling=True, cpu_offload=True)
    m = load_sd_model(tiny_sd_dir, low_memory=low)
    assert m.low_memory == low and m.low_memory is not low
    assert m.vae.use_tiling
    procs = {type(p).__name__ for p in m.unet.attn_processors.values()}
    assert any("Sliced" in name for name in procs)
    with m.use("unet") as unet, m.use("unet") as inner:
        assert unet is m.unet and inner is m.unet
        assert next(unet.parameters()).device.type == "cpu"
    with m.use("vae") as vae:
        image = vae.decode(torch.zeros(1, 4, 8, 8)).sample
    assert image.shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="Unknown component"):
        with m.use("safety_checker"):
            pass

    m.set_low_memory(LowMemory())
    assert not m.vae.use_tiling
    procs = {type(p).__name__ for p in m.unet.attn_processors.values()}
    assert not any("Sliced" in name for name in procs)


def test_use_moves_to_device_and_back_with_offload(tiny_sd_dir):
    """With cpu_offload on a (pretend) GPU, use() moves the module there once and back."""
    m = load_sd_model(tiny_sd_dir, low_memory=LowMemory(cpu_offload=True))
    moves = []
    unet = m.unet
    real_to = unet.to

    def record(*args, **kwargs):
        moves.append(str(args[0]) if args else str(kwargs))
        return unet

    m.device = torch.device("cuda")  # pretend; the recorded .to() never really moves
    unet.to = record
    try:
        with m.use("unet"):
            with m.use("unet"):
                assert moves == ["cuda"]
            assert moves == ["cuda"]
        assert moves == ["cuda", "cpu"]
        # Without offload nothing moves.
        m.low_memory = LowMemory(cpu_offload=False)
        moves.clear()
        with m.use("unet"):
            pass
        assert moves == []
    finally:
        del unet.to
        assert unet.to == real_to


# ---------------------------------------------------------------------------------------
# devices, dtypes, folders
# ---------------------------------------------------------------------------------------
def test_choose_device_and_dtype(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.choose_device() == torch.device("cpu")
    assert models.choose_device("auto") == torch.device("cpu")
    assert models.choose_device("cpu") == torch.device("cpu")
    with pytest.raises(ModelError, match="CUDA is not available"):
        models.choose_device("cuda")
    with pytest.raises(ModelError, match="Unknown device"):
        models.choose_device("tpu")

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert models.choose_dtype(cpu) == torch.float32
    assert models.choose_dtype(cuda) == torch.float16
    assert models.choose_dtype(cuda, "fp32") == torch.float32
    assert models.choose_dtype(cuda, torch.bfloat16) == torch.bfloat16
    with pytest.raises(ModelError, match="not supported on the CPU"):
        models.choose_dtype(cpu, "fp16")
    with pytest.raises(ModelError, match="Unknown dtype"):
        models.choose_dtype(cpu, "int8")


def test_default_models_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("EDITEDID_MODELS_DIR", str(tmp_path / "mine"))
    assert models.default_models_dir() == tmp_path / "mine"
    monkeypatch.delenv("EDITEDID_MODELS_DIR")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert models.default_models_dir() == tmp_path / "xdg" / "EditedID" / "models"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert models.default_models_dir() == tmp_path / "local" / "EditedID" / "models"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert models.default_models_dir().parts[-3:] == ("Application Support", "EditedID", "models")


def test_resolve_source(tiny_sd_dir, tmp_path, no_network):
    assert models.resolve_source(tiny_sd_dir) == ("folder", tiny_sd_dir.resolve())
    f = tmp_path / "m.safetensors"
    f.write_bytes(b"x")
    assert models.resolve_source(str(f)) == ("single_file", f.resolve())
    assert models.resolve_source("CompVis/stable-diffusion-v1-4", models_dir=tmp_path) == (
        "hub",
        None,
    )
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        models.resolve_source(tmp_path / "nope")


def test_import_touches_no_heavy_library():
    code = (
        "import sys, engine.models.loading; "
        "bad = [m for m in ('diffusers', 'transformers', 'huggingface_hub') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


# ---------------------------------------------------------------------------------------
# the shipped SD 1.x configs describe the real architecture
# ---------------------------------------------------------------------------------------
def test_sd15_configs_are_full_sd14_architecture():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    cfg = sd15_config_dir()
    models.check_sd1_folder(cfg)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(cfg / "unet")))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(cfg / "vae")))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(str(cfg / "text_encoder")))

    def count(module):
        return sum(p.numel() for p in module.parameters())

    assert next(unet.parameters()).device.type == "meta"
    assert count(unet) == pytest.approx(859.5e6, rel=1e-3)
    assert count(vae) == pytest.approx(83.65e6, rel=1e-3)
    assert count(text) == pytest.approx(123.06e6, rel=1e-3)
    assert unet.config.cross_attention_dim == text.config.hidden_size == 768
    assert vae.config.scaling_factor == pytest.approx(0.18215)
    tok = CLIPTokenizer.from_pretrained(str(cfg / "tokenizer"))
    assert len(tok) == 49408


# ---------------------------------------------------------------------------------------
# bad folders
# ---------------------------------------------------------------------------------------
def test_not_a_diffusers_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a diffusers model folder") as err:
        load_sd_model(tmp_path / "empty")
    assert "model_index.json" in str(err.value) and "unet/ vae/" in str(err.value)


def test_parent_folder_points_to_the_model(tiny_sd_dir, tmp_path):
    copy_model(tiny_sd_dir, tmp_path / "parent" / "sd14")
    with pytest.raises(ModelError, match="point to that folder") as err:
        load_sd_model(tmp_path / "parent")
    assert "sd14" in str(err.value)


def test_sdxl_folder_refused(tiny_sd_dir, tmp_path):
    m = copy_model(tiny_sd_dir, tmp_path / "xl")
    edit_json(
        m / "model_index.json", text_encoder_2=["transformers", "CLIPTextModelWithProjection"]
    )
    with pytest.raises(ModelError, match="Stable Diffusion XL"):
        load_sd_model(m)


def test_sd2_folder_refused(tiny_sd_dir, tmp_path):
    m = copy_model(tiny_sd_dir, tmp_path / "sd2")
    edit_json(m / "unet" / "config.json", cross_attention_dim=1024)
    with pytest.raises(ModelError, match=r"Stable Diffusion 2\.x"):
        load_sd_model(m)


def test_v_prediction_folder_refused(tiny_sd_dir, tmp_path):
    m = copy_model(tiny_sd_dir, tmp_path / "v")
    edit_json(m / "scheduler" / "scheduler_config.json", prediction_type="v_prediction")
    with pytest.raises(ModelError, match="v_prediction"):
        load_sd_model(m)


def test_inpainting_folder_refused(tiny_sd_dir, tmp_path):
    m = copy_model(tiny_sd_dir, tmp_path / "inpaint")
    edit_json(m / "unet" / "config.json", in_channels=9)
    with pytest.raises(ModelError, match="inpainting") as err:
        load_sd_model(m)
    assert "in_channels 9" in str(err.value)


def test_mismatched_text_encoder_refused(tiny_sd_dir, tmp_path):
    m = copy_model(tiny_sd_dir, tmp_path / "mix")
    edit_json(m / "text_encoder" / "config.json", hidden_size=64)
    with pytest.raises(ModelError, match="does not match"):
        load_sd_model(m)


def test_incomplete_folder_refused(tiny_sd_dir, tmp_path):
    m = copy_model(tiny_sd_dir, tmp_path / "partial")
    shutil.rmtree(m / "vae")
    with pytest.raises(ModelError, match="missing vae"):
        load_sd_model(m)
    m2 = copy_model(tiny_sd_dir, tmp_path / "noweights")
    (m2 / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelError, match="unet/ has no weights"):
        load_sd_model(m2)


def test_missing_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError) as err:
        load_sd_model(missing)
    assert str(missing) in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


def test_pickle_only_folder(tiny_sd_dir, tmp_path, caplog):
    from safetensors.torch import load_file

    m = copy_model(tiny_sd_dir, tmp_path / "pickled")
    st = m / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(st)), m / "unet" / "diffusion_pytorch_model.bin")
    st.unlink()
    with pytest.raises(UnsafeCheckpointError, match="pickle") as err:
        load_sd_model(m)
    assert "unet" in str(err.value) and str(m) in str(err.value)

    with caplog.at_level(logging.WARNING, logger="engine.models.loading"):
        loaded = load_sd_model(m, allow_pickle=True)
    assert any("pickle" in r.getMessage() for r in caplog.records)
    reference = load_sd_model(tiny_sd_dir)
    assert weights_equal(loaded.unet, reference.unet)
    assert loaded.fingerprint != reference.fingerprint


def test_fp16_variant_only_folder(tiny_sd_dir, tmp_path):
    """A folder with only *.fp16.safetensors weights (what variant='fp16' downloads)."""
    m = copy_model(tiny_sd_dir, tmp_path / "fp16")
    for comp, stem in (
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    ):
        (m / comp / f"{stem}.safetensors").rename(m / comp / f"{stem}.fp16.safetensors")
    loaded = load_sd_model(m)
    assert loaded.dtype == torch.float32
    assert weights_equal(loaded.vae, load_sd_model(tiny_sd_dir).vae)


def test_pickle_single_file_refused_without_reading(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"this would be a pickle")
    with pytest.raises(UnsafeCheckpointError, match="pickle") as err:
        load_sd_model(ckpt)
    assert str(ckpt) in str(err.value) and ".safetensors" in str(err.value)


def test_unknown_single_file_type(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    with pytest.raises(ModelError, match="expected a .safetensors file"):
        load_sd_model(f)


# ---------------------------------------------------------------------------------------
# hub ids and downloads (never the network)
# ---------------------------------------------------------------------------------------
def test_hub_id_not_downloaded(tmp_path, no_network):
    with pytest.raises(ModelNotFoundError) as err:
        load_sd_model("CompVis/stable-diffusion-v1-4", models_dir=tmp_path)
    msg = str(err.value)
    assert "CompVis/stable-diffusion-v1-4" in msg
    assert "GB" in msg
    assert str(tmp_path / "CompVis--stable-diffusion-v1-4") in msg
    assert "copy" in msg


def test_hub_id_found_in_models_dir(tiny_sd_dir, tmp_path, no_network):
    copy_model(tiny_sd_dir, tmp_path / "acme--tiny-sd")
    m = load_sd_model("acme/tiny-sd", models_dir=tmp_path)
    assert m.source_kind == "hub" and m.model_id == "acme/tiny-sd"
    assert m.fingerprint == models.fingerprint_folder(tiny_sd_dir)


def test_env_models_dir_used_for_hub_ids(tiny_sd_dir, tmp_path, monkeypatch, no_network):
    copy_model(tiny_sd_dir, tmp_path / "acme--tiny-sd")
    monkeypatch.setenv("EDITEDID_MODELS_DIR", str(tmp_path))
    assert models.resolve_source("acme/tiny-sd")[1] == (tmp_path / "acme--tiny-sd").resolve()


def _fake_snapshot_download(src: Path, calls: list):
    """Stands in for huggingface_hub.snapshot_download: copies src, drives tqdm_class."""
    import fnmatch

    def fake(repo_id, *, local_dir, allow_patterns, tqdm_class, **kwargs):
        calls.append({"repo_id": repo_id, "allow_patterns": allow_patterns, **kwargs})
        files = [
            p
            for p in sorted(src.rglob("*"))
            if p.is_file()
            and any(fnmatch.fnmatch(p.relative_to(src).as_posix(), pat) for pat in allow_patterns)
        ]
        total = sum(p.stat().st_size for p in files)
        with tqdm_class(desc=f"Fetching {len(files)} files", total=len(files)) as files_bar:
            bytes_bar = tqdm_class(desc="Reconstructing", total=total, unit="B", unit_scale=True)
            for p in files:
                dst = Path(local_dir) / p.relative_to(src)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dst)
                bytes_bar.update(p.stat().st_size)
                files_bar.update(1)
            bytes_bar.close()
        return str(local_dir)

    return fake


def test_download_progress_and_load(tiny_sd_dir, tmp_path, monkeypatch, no_network):
    import huggingface_hub

    # the tiny folder also holds a pickle and a stray checkpoint that must not be fetched
    src = copy_model(tiny_sd_dir, tmp_path / "remote")
    (src / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    (src / "sd-v1-4.ckpt").write_bytes(b"pickle")
    calls: list = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _fake_snapshot_download(src, calls))
    seen = []
    m = load_sd_model(
        "acme/tiny-sd",
        models_dir=tmp_path / "models",
        allow_download=True,
        progress=lambda done, total, name: seen.append((done, total, name)),
    )
    assert m.source_kind == "hub"
    target = tmp_path / "models" / "acme--tiny-sd"
    assert (target / "model_index.json").is_file()
    assert not list(target.rglob("*.bin")) and not list(target.rglob("*.ckpt"))
    assert calls[0]["repo_id"] == "acme/tiny-sd"
    assert seen and seen[-1][0] == seen[-1][1] > 0
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:], strict=False))
    assert "acme/tiny-sd" in seen[-1][2]
    assert m.fingerprint == models.fingerprint_folder(target)


def test_download_fp16_patterns(tmp_path, monkeypatch, no_network):
    import huggingface_hub

    calls: list = []

    def fake(repo_id, **kwargs):
        calls.append(kwargs["allow_patterns"])
        raise OSError("stop here")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    with pytest.raises(DownloadError):
        models.download_sd_model("acme/tiny-sd", models_dir=tmp_path, variant="fp16")
    pats = calls[0]
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in pats
    assert not any(p.endswith((".bin", ".ckpt")) for p in pats)


def test_download_cancel(tiny_sd_dir, tmp_path, monkeypatch, no_network):
    import huggingface_hub

    monkeypatch.setattr(
        huggingface_hub, "snapshot_download", _fake_snapshot_download(tiny_sd_dir, [])
    )
    progress_calls = []
    with pytest.raises(Cancelled):
        models.download_sd_model(
            "acme/tiny-sd",
            models_dir=tmp_path,
            progress=lambda *a: progress_calls.append(a),
            cancel=lambda: len(progress_calls) >= 1,
        )
    assert len(progress_calls) == 1


def test_download_offline_gives_download_error(tmp_path, no_network):
    with pytest.raises(DownloadError) as err:
        models.download_sd_model("CompVis/stable-diffusion-v1-4", models_dir=tmp_path)
    msg = str(err.value).lower()
    assert "offline" in msg
    assert str(tmp_path / "CompVis--stable-diffusion-v1-4").lower() in msg


def test_download_rejects_non_hub_id(tmp_path):
    with pytest.raises(DownloadError, match="not a hub id"):
        models.download_sd_model("/some/path", models_dir=tmp_path)


# ---------------------------------------------------------------------------------------
# single-file checkpoints (original LDM key layout)
# ---------------------------------------------------------------------------------------
def _unet_to_ldm(sd: dict, cfg: dict) -> dict:
    """diffusers UNet2DConditionModel keys -> original LDM keys (any depth, SD block types)."""
    n_blocks, layers = len(cfg["block_out_channels"]), cfg["layers_per_block"]
    down_attn = ["CrossAttn" in t for t in cfg["down_block_types"]]
    up_attn = ["CrossAttn" in t for t in cfg["up_block_types"]]
    direct = {
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        "conv_in.": "input_blocks.0.0.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
    }
    resnet = [
        ("norm1.", "in_layers.0."),
        ("conv1.", "in_layers.2."),
        ("norm2.", "out_layers.0."),
        ("conv2.", "out_layers.3."),
        ("time_emb_proj.", "emb_layers.1."),
        ("conv_shortcut.", "skip_connection."),
    ]
    prefixes = [(a, b, False) for a, b in direct.items()]
    step = layers + 1
    for i in range(n_blocks):
        for j in range(layers):
            res = f"input_blocks.{step * i + j + 1}.0."
            prefixes.append((f"down_blocks.{i}.resnets.{j}.", res, True))
            if down_attn[i]:
                prefixes.append(
                    (
                        f"down_blocks.{i}.attentions.{j}.",
                        f"input_blocks.{step * i + j + 1}.1.",
                        False,
                    )
                )
        for j in range(step):
            prefixes.append(
                (f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{step * i + j}.0.", True)
            )
            if up_attn[i]:
                prefixes.append(
                    (f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{step * i + j}.1.", False)
                )
        if i < n_blocks - 1:
            prefixes.append(
                (
                    f"down_blocks.{i}.downsamplers.0.conv.",
                    f"input_blocks.{step * (i + 1)}.0.op.",
                    False,
                )
            )
            up_idx = f"output_blocks.{step * i + layers}.{2 if up_attn[i] else 1}."
            prefixes.append((f"up_blocks.{i}.upsamplers.0.", up_idx, False))
    prefixes.append(("mid_block.attentions.0.", "middle_block.1.", False))
    prefixes += [(f"mid_block.resnets.{j}.", f"middle_block.{2 * j}.", True) for j in range(2)]
    out = {}
    for key, value in sd.items():
        for a, b, is_resnet in prefixes:
            if key.startswith(a):
                rest = key[len(a) :]
                if is_resnet:
                    for x, y in resnet:
                        if rest.startswith(x):
                            rest = y + rest[len(x) :]
                out["model.diffusion_model." + b + rest] = value
                break
        else:
            raise AssertionError(f"unmapped UNet key {key}")
    return out


def _vae_to_ldm(sd: dict, cfg: dict) -> dict:
    n_blocks, layers = len(cfg["block_out_channels"]), cfg["layers_per_block"]
    pre = [
        ("encoder.conv_norm_out.", "encoder.norm_out."),
        ("decoder.conv_norm_out.", "decoder.norm_out."),
    ]
    for i in range(n_blocks):
        up = n_blocks - 1 - i
        pre += [
            (f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.")
            for j in range(layers)
        ]
        pre += [
            (f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{up}.block.{j}.")
            for j in range(layers + 1)
        ]
        if i < n_blocks - 1:
            pre.append(
                (f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
            )
            pre.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{up}.upsample."))
    for part in ("encoder", "decoder"):
        pre += [(f"{part}.mid_block.resnets.{j}.", f"{part}.mid.block_{j + 1}.") for j in range(2)]
        pre.append((f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."))
    attn = [
        ("group_norm.", "norm."),
        ("to_q.", "q."),
        ("to_k.", "k."),
        ("to_v.", "v."),
        ("to_out.0.", "proj_out."),
    ]
    out = {}
    for key, value in sd.items():
        new = key
        for a, b in pre:
            if key.startswith(a):
                rest = key[len(a) :].replace("conv_shortcut.", "nin_shortcut.")
                if b.endswith("attn_1."):
                    for x, y in attn:
                        if rest.startswith(x):
                            rest = y + rest[len(x) :]
                            if value.ndim == 2:  # LDM stores these as 1x1 convolutions
                                value = value[:, :, None, None]
                new = b + rest
                break
        out["first_stage_model." + new] = value
    return out


def _clip_to_ldm(sd: dict) -> dict:
    prefix = "cond_stage_model.transformer."
    return {
        prefix + (k if k.startswith("text_model.") else "text_model." + k): v for k, v in sd.items()
    }


@pytest.fixture(scope="module")
def single_file_model(tiny_model, tiny_sd_dir, tmp_path_factory):
    """A tiny SD 1.x checkpoint in the original single-file layout + a config-only folder."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("single")
    ckpt = {}
    ckpt.update(_unet_to_ldm(tiny_model.unet.state_dict(), dict(tiny_model.unet.config)))
    ckpt.update(_vae_to_ldm(tiny_model.vae.state_dict(), dict(tiny_model.vae.config)))
    ckpt.update(_clip_to_ldm(tiny_model.text_encoder.state_dict()))
    path = root / "tiny-sd.safetensors"
    save_file({k: v.contiguous() for k, v in ckpt.items()}, str(path))
    config = root / "config"
    shutil.copytree(tiny_sd_dir, config, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    return path, config


def test_ldm_conversion_round_trips(tiny_model):
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    for module, to_ldm, back in (
        (tiny_model.unet, _unet_to_ldm, convert_ldm_unet_checkpoint),
        (tiny_model.vae, _vae_to_ldm, convert_ldm_vae_checkpoint),
    ):
        sd, cfg = module.state_dict(), dict(module.config)
        again = back(to_ldm(sd, cfg), cfg)
        assert set(again) == set(sd)
        assert all(torch.equal(again[k], sd[k]) for k in sd)


def test_single_file_loads(single_file_model, tiny_model, no_network):
    path, config = single_file_model
    m = load_sd_model(path, single_file_config=config)
    assert m.source_kind == "single_file" and m.model_id == str(path)
    for name in ("unet", "vae", "text_encoder"):
        assert weights_equal(getattr(m, name), getattr(tiny_model, name)), name
        assert all(not p.requires_grad for p in getattr(m, name).parameters())
    torch.testing.assert_close(m.alphas_cumprod, tiny_model.alphas_cumprod)
    assert m.tokenizer("glasses").input_ids == tiny_model.tokenizer("glasses").input_ids
    assert m.fingerprint == load_sd_model(str(path), single_file_config=config).fingerprint
    assert m.fingerprint != tiny_model.fingerprint


def test_single_file_pickle_refused(single_file_model, tmp_path):
    path, config = single_file_model
    ckpt = tmp_path / "tiny.ckpt"
    shutil.copyfile(path, ckpt)
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        load_sd_model(ckpt, single_file_config=config)


def _write_st(path: Path, shapes: dict) -> Path:
    from safetensors.torch import save_file

    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(path))
    return path


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        ({"conditioner.embedders.1.model.ln_final.weight": (4,)}, "Stable Diffusion XL"),
        ({"cond_stage_model.model.ln_final.weight": (4,)}, r"Stable Diffusion 2\.x"),
        ({"model.diffusion_model.input_blocks.0.0.weight": (32, 9, 3, 3)}, "inpainting"),
        ({"lora_unet_down.alpha": (1,)}, "not a full Stable Diffusion checkpoint|LoRA"),
        ({"model.diffusion_model.input_blocks.0.0.weight": (32, 4, 3, 3)}, "no VAE weights"),
    ],
)
def test_single_file_not_sd1(tmp_path, shapes, expected):
    path = _write_st(tmp_path / "bad.safetensors", shapes)
    with pytest.raises(ModelError, match=expected) as err:
        load_sd_model(path)
    assert str(path) in str(err.value)


def test_single_file_not_safetensors_content(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="(?i)not a readable .safetensors file"):
        load_sd_model(path)


# ---------------------------------------------------------------------------------------
# hostile and malformed model folders (issue 11; the folders: tests/bad_inputs.py)
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_corpus(tiny_sd_dir, tmp_path_factory):
    from tests.bad_inputs import build_model_corpus

    return {c.name: c for c in build_model_corpus(tiny_sd_dir, tmp_path_factory.mktemp("bad"))}


def test_hostile_model_folders_give_clear_errors_and_no_pickle_is_read(model_corpus, monkeypatch):
    """Index files naming .bin shards, JSON lists, zero timesteps, loops: a ModelError (an
    UnsafeCheckpointError for pickle) naming the file at fault; torch.load never runs."""
    import re

    unpickled = []

    def no_torch_load(*args, **kwargs):
        unpickled.append(args)
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", no_torch_load)
    problems = []
    for case in model_corpus.values():
        expected = UnsafeCheckpointError if case.error == "unsafe" else ModelError
        try:
            load_sd_model(case.path)
        except expected as err:
            message = str(err)
            if not re.search(case.match, message):
                problems.append(f"{case.name}: message does not say {case.match!r}: {message}")
            if str(case.names) not in message:
                problems.append(f"{case.name}: message does not name {case.names}: {message}")
        except Exception as err:  # noqa: BLE001 - every other outcome is a problem
            problems.append(f"{case.name}: {type(err).__name__}: {err}")
        else:
            problems.append(f"{case.name}: loaded")
    assert not problems, "\n".join(problems)
    assert not unpickled


@pytest.mark.parametrize("name", ["index_to_bin_unet", "index_to_bin_text_encoder"])
def test_index_to_pickle_shard_loads_only_when_pickle_is_allowed(
    model_corpus, tiny_model, name, caplog
):
    case = model_corpus[name]
    with caplog.at_level(logging.WARNING, logger="engine.models.loading"):
        loaded = load_sd_model(case.path, allow_pickle=True)
    assert any("pickle" in r.getMessage() for r in caplog.records)
    for component in ("unet", "text_encoder"):
        assert weights_equal(getattr(loaded, component), getattr(tiny_model, component))


def test_symlink_loop_is_a_model_error_in_resolve_source(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ModelError, match="symbolic link loop"):
        models.resolve_source(str(loop))
    with pytest.raises(ModelError, match="symbolic link loop"):
        models.resolve_source(loop / "model_index.json")


def test_alphas_from_a_scheduler_config_with_zero_timesteps(tmp_path):
    cfg = tmp_path / "scheduler_config.json"
    cfg.write_text(json.dumps({"num_train_timesteps": 0}))
    with pytest.raises(ModelError, match="num_train_timesteps") as err:
        models.alphas_cumprod_from_config(cfg)
    assert str(cfg) in str(err.value)


def test_cuda_tuning_only_on_cuda(monkeypatch):
    """channels_last weights and cudnn.benchmark on CUDA; nothing changes on the CPU."""
    from diffusers import UNet2DConditionModel

    from engine.models.loading import tune_for_device

    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, cross_attention_dim=32,
        attention_head_dim=8, norm_num_groups=32,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    )  # fmt: skip
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert not tune_for_device(unet, "cpu")
    assert unet.conv_in.weight.is_contiguous() and not torch.backends.cudnn.benchmark
    assert tune_for_device(unet, "cuda")  # moves nothing: only the layout changes
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert not unet.conv_in.weight.is_contiguous()
    assert torch.backends.cudnn.benchmark
