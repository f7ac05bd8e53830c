"""Tiny random Stable Diffusion 1.x models, written as a standard diffusers folder.

Why this test fixture ships inside the engine: the packaged app's `--self-test` (the
report users send when something is wrong) runs a small end-to-end restore without the
network and before any real model is downloaded, so the installed bundle needs the
builder too. The test suite uses the same builder, and the same loading code
(`engine.models.loading`) reads these folders as it reads a real SD 1.4 folder. The
tokenizer is the real CLIP one shipped in resources/, so token positions of words such
as "glasses" are real.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.resources import sd15_config_dir


def build_tiny_sd(
    folder: str | Path,
    *,
    seed: int = 0,
    exact_inversion: bool = False,
    layers_per_block: int = 1,
    sample_size: int = 32,
) -> Path:
    """Write a tiny SD 1.x pipeline folder and return its path.

    exact_inversion: zero the UNet's input convolution and use norm_eps=1 so the noise
    prediction does not depend on the latent; DDIM inversion then reconstructs exactly
    (a known-answer fixture). With the default norm_eps a zeroed net is unstable.
    """
    # Over 60 lines on purpose: it is a flat list of the pipeline's components, each with
    # its tiny config (TESTING.md's numbers), read top to bottom like a model card.
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=layers_per_block,
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
        norm_eps=1.0 if exact_inversion else 1e-5,
    )
    if exact_inversion:
        with torch.no_grad():
            unet.conv_in.weight.zero_()
            unet.conv_in.bias.zero_()
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=sample_size * 2,
    )
    text_config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=2,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-5,
        num_attention_heads=4,
        num_hidden_layers=2,
        pad_token_id=1,
        vocab_size=49408,
        max_position_embeddings=77,
    )
    text_encoder = CLIPTextModel(text_config)
    tokenizer = CLIPTokenizer.from_pretrained(str(sd15_config_dir() / "tokenizer"))
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(folder))
    return folder
