"""engine.evaluation.image_quality: SSIM against scikit-image, masked PSNR, ImageReward."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.metrics as skm  # scikit-image is a [dev] dependency
from PIL import Image, ImageFilter

from engine.errors import InputError, ModelNotFoundError
from engine.evaluation import image_quality as image_metrics
from engine.evaluation.image_quality import image_reward, imagereward_available, masked_psnr, ssim
from tests.helpers import sample_photo


def _photo(name: str = "grace_hopper") -> np.ndarray:
    return np.asarray(Image.open(sample_photo(name)).convert("RGB"))


def _reference(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        skm.structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1 if a.ndim == 3 else None,
        )
    )


def _variants(photo: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    noisy = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(photo).filter(ImageFilter.GaussianBlur(2)))
    darker = (photo * 0.7).astype(np.uint8)
    return {"noise": noisy, "blur": blurred, "darker": darker, "same": photo.copy()}


@pytest.mark.parametrize("variant", ["noise", "blur", "darker", "same"])
def test_ssim_matches_skimage(variant):
    photo = _photo()
    other = _variants(photo)[variant]
    ours, theirs = ssim(photo, other), _reference(photo, other)
    print(f"ssim {variant}: ours {ours:.5f} skimage {theirs:.5f}")
    assert abs(ours - theirs) < 1e-3


def test_ssim_grayscale_and_float():
    photo = np.asarray(Image.open(sample_photo("astronaut")).convert("L"))
    other = _variants(photo)["noise"]
    assert abs(ssim(photo, other) - _reference(photo, other)) < 1e-3
    a, b = photo / 255.0, other / 255.0
    ref = skm.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    assert abs(ssim(a, b) - ref) < 1e-3


def test_ssim_with_mask_sees_only_the_mask():
    photo = _photo()
    changed = photo.copy()
    changed[:100] = 0
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[200:] = 255
    assert ssim(photo, changed, mask) == pytest.approx(1.0)
    assert ssim(photo, changed) < 0.95
    with pytest.raises(InputError, match="empty"):
        ssim(photo, changed, np.zeros_like(mask))
    with pytest.raises(InputError, match="one size"):
        ssim(photo, photo[:-1])


def test_masked_psnr():
    photo = _photo()
    changed = photo.copy()
    changed[:100] = 255 - changed[:100]
    outside = np.zeros(photo.shape[:2], bool)
    outside[100:] = True
    assert masked_psnr(photo, changed, outside) == float("inf")
    inside = masked_psnr(photo, changed, ~outside)
    whole = masked_psnr(photo, changed)
    assert inside < whole < 40
    with pytest.raises(InputError, match="8-bit"):
        masked_psnr(photo.astype(np.float32), changed)


def test_imagereward_absent_gives_a_clear_message(tmp_path, monkeypatch):
    assert not imagereward_available(tmp_path)
    # the package missing (as in the test environment): say how to install it
    real_find_spec = image_metrics.importlib.util.find_spec

    def only_imagereward(found):
        module = image_metrics.IMAGEREWARD_MODULE
        return lambda name, *a: found if name == module else real_find_spec(name, *a)

    monkeypatch.setattr(image_metrics.importlib.util, "find_spec", only_imagereward(None))
    status = image_metrics.imagereward_status(tmp_path)
    assert "ImageReward is not installed" in status and "pip install" in status
    # the package present but not its checkpoint: name the folder to put it in
    monkeypatch.setattr(image_metrics.importlib.util, "find_spec", only_imagereward(object()))
    status = image_metrics.imagereward_status(tmp_path)
    assert "not on this machine" in status and str(tmp_path) in status
    with pytest.raises(ModelNotFoundError, match="ImageReward"):
        image_reward(_photo(), "a photo of a face", models_dir=tmp_path)
