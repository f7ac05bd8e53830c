"""Image fidelity metrics: SSIM, PSNR inside a mask, and ImageReward where installed.

`ssim` is the standard Gaussian-window SSIM of Wang et al. 2004 (window sigma 1.5,
11 taps, K1 0.01, K2 0.03, population covariances), computed per channel and averaged;
it matches `skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)` (scikit-image
is only a test dependency). Like scikit-image it leaves out the 5-pixel border where the
window does not fit; with a mask, the SSIM map is averaged over the mask's pixels.

ImageReward (Xu et al. 2023) needs the optional `image-reward` package and its checkpoint
(`ImageReward.pt` + `med_config.json`) in `<models_dir>/ImageReward/`; nothing is ever
downloaded here. Its checkpoint is a pickle file, so loading it also needs allow_pickle.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from engine.errors import InputError, ModelError, ModelNotFoundError

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _pair(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise InputError(f"{what} needs images of one size, got {a.shape} and {b.shape}.")
    if a.ndim not in (2, 3):
        raise InputError(f"{what} needs HxW or HxWxC images, got shape {a.shape}.")
    return a, b


def _mask_bool(mask: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.shape != tuple(shape[:2]):
        raise InputError(f"{what}: the mask is {mask.shape} but the images are {shape[:2]}.")
    if mask.dtype == np.bool_:
        return mask
    return mask > (127 if mask.dtype == np.uint8 else 0.5)


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> np.ndarray:
    """Per-pixel SSIM (HxW, channels averaged), Gaussian window; border included."""
    a, b = _pair(a, b, "ssim")
    if data_range is None:
        data_range = 255.0 if a.dtype == np.uint8 else 1.0
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2

    def blur(img: np.ndarray) -> np.ndarray:
        out = cv2.GaussianBlur(
            img, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT
        )
        return out.reshape(img.shape)

    maps = []
    for c in range(x.shape[2]):
        xc, yc = np.ascontiguousarray(x[..., c]), np.ascontiguousarray(y[..., c])
        mx, my = blur(xc), blur(yc)
        vx = blur(xc * xc) - mx * mx
        vy = blur(yc * yc) - my * my
        vxy = blur(xc * yc) - mx * my
        num = (2 * mx * my + c1) * (2 * vxy + c2)
        den = (mx * mx + my * my + c1) * (vx + vy + c2)
        maps.append(num / den)
    return np.mean(maps, axis=0)


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    data_range: float | None = None,
) -> float:
    """Mean SSIM of two images of one shape (uint8: data range 255; float: 1).

    Without a mask the 5-pixel border is left out (as scikit-image does); with a mask
    the SSIM map is averaged over the mask's pixels (HxW, non-zero = inside).
    """
    a, b = _pair(a, b, "ssim")
    full = ssim_map(a, b, data_range)
    pad = (SSIM_WINDOW - 1) // 2
    if mask is None:
        if min(full.shape) <= 2 * pad:
            raise InputError(f"ssim needs images larger than {2 * pad + 1} pixels a side.")
        return float(full[pad:-pad, pad:-pad].mean())
    inside = _mask_bool(mask, a.shape, "ssim")
    if not inside.any():
        raise InputError("ssim: the mask is empty, so there is nothing to compare.")
    return float(full[inside].mean())


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of two uint8 images over the mask's pixels (all pixels without a mask);
    inf when they are identical there."""
    a, b = _pair(a, b, "psnr")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise InputError(f"psnr needs 8-bit images, got {a.dtype} and {b.dtype}.")
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if mask is not None:
        inside = _mask_bool(mask, a.shape, "psnr")
        if not inside.any():
            raise InputError("psnr: the mask is empty, so there is nothing to compare.")
        diff = diff[inside]
    mse = float(diff.mean())
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


# --- ImageReward (optional) ------------------------------------------------------------
IMAGEREWARD_PACKAGE = "image-reward"
IMAGEREWARD_MODULE = "ImageReward"
IMAGEREWARD_FILES = ("ImageReward.pt", "med_config.json")
_IMAGEREWARD_CACHE: dict[str, object] = {}


def imagereward_dir(models_dir: str | Path | None = None) -> Path:
    from engine.models.loading import default_models_dir

    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    return root / "ImageReward"


def imagereward_status(models_dir: str | Path | None = None) -> str:
    """ "ready", or why ImageReward cannot run on this machine (nothing is loaded)."""
    if importlib.util.find_spec(IMAGEREWARD_MODULE) is None:
        return (
            f"ImageReward is not installed: it is an optional extra (pip install "
            f"{IMAGEREWARD_PACKAGE}); scores without it leave the ImageReward column empty."
        )
    folder = imagereward_dir(models_dir)
    missing = [name for name in IMAGEREWARD_FILES if not (folder / name).is_file()]
    if missing:
        return (
            f"ImageReward's model is not on this machine: {', '.join(missing)} missing in "
            f"{folder}. Download ImageReward.pt and med_config.json from "
            "https://huggingface.co/THUDM/ImageReward yourself and put them there; this app "
            "never downloads it on its own."
        )
    return "ready"


def imagereward_available(models_dir: str | Path | None = None) -> bool:
    """True when the image-reward package and its checkpoint are installed locally."""
    return imagereward_status(models_dir) == "ready"


def _load_imagereward(models_dir, allow_pickle: bool, device: str):
    status = imagereward_status(models_dir)
    if status != "ready":
        raise ModelNotFoundError(status)
    folder = imagereward_dir(models_dir)
    if not allow_pickle:
        raise ModelError(
            f"{folder / 'ImageReward.pt'} is a pickle checkpoint, which can run code when "
            "loaded; allow pickle files explicitly (--allow-pickle) if you trust its source."
        )
    key = f"{folder}|{device}"
    if key not in _IMAGEREWARD_CACHE:
        import ImageReward as reward  # noqa: N813 - the package's own name

        try:
            _IMAGEREWARD_CACHE[key] = reward.load(
                str(folder / "ImageReward.pt"),
                device=device,
                download_root=str(folder),
                med_config=str(folder / "med_config.json"),
            )
        except Exception as exc:  # noqa: BLE001 - e.g. its BERT tokenizer is not cached
            raise ModelError(
                f"ImageReward could not be loaded from {folder}: {exc}. It also needs the "
                "bert-base-uncased tokenizer in the Hugging Face cache (it never downloads here)."
            ) from exc
    return _IMAGEREWARD_CACHE[key]


def image_reward(
    image: np.ndarray,
    prompt: str,
    *,
    models_dir: str | Path | None = None,
    allow_pickle: bool = False,
    device: str = "cpu",
) -> float:
    """ImageReward score of an RGB uint8 image for `prompt` (higher = preferred).

    Raises ModelNotFoundError with the reason when the package or model is missing.
    """
    from PIL import Image

    model = _load_imagereward(models_dir, allow_pickle, device)
    rgb = Image.fromarray(np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3]))
    return float(model.score(prompt, [rgb]))
