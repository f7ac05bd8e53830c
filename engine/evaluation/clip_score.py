"""CLIP-S: how well an image (or the region of the edited element) matches a text.

    clip = ClipScorer.load("openai/clip-vit-large-patch14")      # local copy only
    clip.score(image, "a photo of a face with glasses")           # 100 * cosine

The score is 100 x the cosine similarity of CLIP's image and text embeddings, the way
image-editing papers report CLIP-S (no 2.5 weight, no clipping at 0). Numbers are only
comparable between runs of the same CLIP model: `ClipScorer.model_id` names it.

Loading follows the rules of engine.models.loading: a local folder (config.json, safetensors
weights, tokenizer and preprocessor files, as `save_pretrained` writes them) or a hub id
looked up in `default_models_dir()/<org>--<name>`; a hub id is downloaded only when the
caller passes allow_download=True. Weights are read as safetensors only unless
allow_pickle=True. transformers is imported inside the functions that need it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import DownloadError, ModelError, ModelNotFoundError

log = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
CLIP_DOWNLOAD_SIZE = "about 1.7 GB"
# What a CLIP repository needs for this app (safetensors weights only).
CLIP_ALLOW_PATTERNS = ["*.json", "merges.txt", "vocab.json", "model.safetensors"]


def _local_clip_copy(hub_id: str, models_dir: str | Path | None) -> Path | None:
    from engine.models.loading import default_models_dir, hub_folder_name

    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    candidate = root / hub_folder_name(hub_id)
    if (candidate / "config.json").is_file():
        return candidate.resolve()
    try:  # a copy transformers already put in the Hugging Face cache (local only)
        from huggingface_hub import snapshot_download

        cached = Path(
            snapshot_download(hub_id, local_files_only=True, allow_patterns=CLIP_ALLOW_PATTERNS)
        )
        if (cached / "config.json").is_file() and (cached / "model.safetensors").is_file():
            return cached
    except Exception:  # noqa: BLE001 - not cached: simply absent
        pass
    return None


def not_downloaded_message(hub_id: str, models_dir: str | Path | None = None) -> str:
    from engine.models.loading import default_models_dir, hub_folder_name

    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    target = root / hub_folder_name(hub_id)
    return (
        f"CLIP model {hub_id!r} is not on this machine (looked in {target}). Downloading it "
        f"takes {CLIP_DOWNLOAD_SIZE} from huggingface.co and happens only when you ask for it "
        "(allow the download, e.g. --allow-download). Offline: download "
        f"https://huggingface.co/{hub_id} (config, tokenizer and preprocessor JSON files, "
        f"merges.txt, vocab.json, model.safetensors) on another machine and copy it to "
        f"{target}, or give the folder's path instead of the hub id."
    )


def resolve_clip_source(
    source: str | Path, *, models_dir: str | Path | None = None
) -> tuple[str, Path | None]:
    """("folder", path) or ("hub", local copy or None); a missing path raises."""
    from engine.models.loading import looks_like_hub_id

    text = str(source).strip()
    if not text:
        raise ModelNotFoundError("No CLIP model given: name a folder or a hub id.")
    path = Path(text).expanduser()
    if path.is_dir():
        return "folder", path.resolve()
    if path.is_file():
        raise ModelError(
            f"{path} is a file; a CLIP model is a folder (config.json, model.safetensors, "
            "tokenizer and preprocessor files) or a hub id such as "
            f"{DEFAULT_CLIP_MODEL!r}."
        )
    if isinstance(source, str) and looks_like_hub_id(text):
        return "hub", _local_clip_copy(text, models_dir)
    raise ModelNotFoundError(
        f"CLIP model not found: {path.resolve()} does not exist. Give a CLIP folder or a hub "
        f"id such as {DEFAULT_CLIP_MODEL!r}."
    )


def download_clip_model(
    hub_id: str = DEFAULT_CLIP_MODEL, *, models_dir: str | Path | None = None
) -> Path:
    """Download a CLIP repository's safetensors weights and configs into models_dir."""
    from engine.models.loading import default_models_dir, hub_folder_name, looks_like_hub_id

    if not looks_like_hub_id(hub_id):
        raise DownloadError(f"{hub_id!r} is not a hub id (expected 'organisation/name').")
    root = Path(models_dir).expanduser() if models_dir is not None else default_models_dir()
    target = root / hub_folder_name(hub_id)
    try:
        target.mkdir(parents=True, exist_ok=True)
        import huggingface_hub

        huggingface_hub.snapshot_download(
            hub_id, local_dir=str(target), allow_patterns=CLIP_ALLOW_PATTERNS
        )
    except Exception as exc:  # noqa: BLE001 - network, HTTP and disk errors
        raise DownloadError(
            f"Download of {hub_id} failed: {exc}. Check the internet connection, or copy the "
            f"folder to {target} by hand."
        ) from exc
    if not (target / "model.safetensors").is_file():
        raise DownloadError(
            f"{hub_id} has no model.safetensors; this app does not download pickle weights."
        )
    return target


def _check_folder(folder: Path, allow_pickle: bool) -> bool:
    """Validate a CLIP folder; returns whether to read safetensors."""
    config = folder / "config.json"
    if not config.is_file():
        raise ModelError(f"{folder} has no config.json: it is not a CLIP model folder.")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config} is not readable JSON: {exc}") from exc
    if model_type != "clip":
        raise ModelError(
            f"{folder} holds a {model_type!r} model, not CLIP (a full CLIP model with image and "
            "text towers, such as openai/clip-vit-large-patch14, is needed)."
        )
    if any(folder.glob("*.safetensors")):
        return True
    pickled = [p.name for p in folder.glob("*.bin")]
    if pickled and allow_pickle:
        log.warning("Loading pickle CLIP weights %s (allowed by the caller)", pickled)
        return False
    if pickled:
        raise ModelError(
            f"{folder}: the CLIP weights ({', '.join(pickled)}) are pickle files, which can run "
            "code when loaded. Use the model.safetensors file of the same repository, or allow "
            "pickle files explicitly if you trust the source."
        )
    raise ModelError(f"{folder} has no CLIP weights (model.safetensors).")


def _image_processor_class():
    try:  # transformers 5.x: the PIL backend (no torchvision needed)
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    except ImportError:  # pragma: no cover - transformers 4.x
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor


class ClipScorer:
    """A loaded CLIP model: image and text embeddings and CLIP-S."""

    def __init__(self, model, tokenizer, image_processor, model_id: str, device) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.model_id = model_id
        self.device = torch.device(device)
        self._text_cache: dict[str, torch.Tensor] = {}

    @classmethod
    def load(
        cls,
        source: str | Path = DEFAULT_CLIP_MODEL,
        *,
        allow_download: bool = False,
        models_dir: str | Path | None = None,
        allow_pickle: bool = False,
        device: str | torch.device | None = "cpu",
    ) -> ClipScorer:
        """Load CLIP from a folder or a hub id (downloaded only with allow_download)."""
        from engine.models.loading import choose_device

        kind, path = resolve_clip_source(source, models_dir=models_dir)
        if kind == "hub" and path is None:
            if not allow_download:
                raise ModelNotFoundError(not_downloaded_message(str(source), models_dir))
            path = download_clip_model(str(source), models_dir=models_dir)
        assert path is not None
        safetensors = _check_folder(path, allow_pickle)
        dev = choose_device(device)
        from transformers import CLIPModel, CLIPTokenizer

        try:
            model = CLIPModel.from_pretrained(
                str(path), local_files_only=True, use_safetensors=safetensors
            )
            tokenizer = CLIPTokenizer.from_pretrained(str(path), local_files_only=True)
            processor = _image_processor_class().from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - library errors become one clear message
            raise ModelError(f"Cannot load the CLIP model in {path}: {exc}") from exc
        model.eval().requires_grad_(False).to(dev)
        model_id = str(source) if kind == "hub" else path.name
        log.info("Loaded CLIP %s from %s on %s", model_id, path, dev)
        return cls(model, tokenizer, processor, model_id, dev)

    def describe(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "device": str(self.device)}

    @torch.no_grad()
    def image_embedding(self, image: np.ndarray) -> torch.Tensor:
        from PIL import Image

        rgb = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
        inputs = self.image_processor(images=[Image.fromarray(rgb)], return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, next(self.model.parameters()).dtype)
        features = self.model.get_image_features(pixel_values=pixels)
        features = getattr(features, "pooler_output", features)
        return torch.nn.functional.normalize(features.float(), dim=-1)[0]

    @torch.no_grad()
    def text_embedding(self, text: str) -> torch.Tensor:
        if text not in self._text_cache:
            tokens = self.tokenizer(
                [text], padding="max_length", truncation=True, max_length=77, return_tensors="pt"
            )
            features = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            )
            features = getattr(features, "pooler_output", features)
            self._text_cache[text] = torch.nn.functional.normalize(features.float(), dim=-1)[0]
        return self._text_cache[text]

    def score(
        self,
        image: np.ndarray,
        text: str,
        *,
        region: np.ndarray | tuple[int, int, int, int] | None = None,
    ) -> float:
        """CLIP-S = 100 * cos(image, text) of `image` (HxWx3 uint8 RGB).

        region: None (whole image), a box (x0, y0, x1, y1), or a mask (HxW, non-zero =
        inside) whose bounding box, padded by 10 %, is cropped before scoring.
        """
        crop = crop_region(image, region)
        cosine = float(torch.dot(self.image_embedding(crop), self.text_embedding(text)))
        return 100.0 * cosine


def region_box(
    mask: np.ndarray, pad: float = 0.1, min_pixels: int = 64
) -> tuple[int, int, int, int] | None:
    """Padded bounding box (x0, y0, x1, y1) of a mask's non-zero pixels; None if too few."""
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    ys, xs = np.nonzero(mask > (127 if mask.dtype == np.uint8 else 0.5))
    if len(xs) < min_pixels:
        return None
    h, w = mask.shape
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    px, py = int(round((x1 - x0) * pad)), int(round((y1 - y0) * pad))
    return max(0, x0 - px), max(0, y0 - py), min(w, x1 + px), min(h, y1 + py)


def crop_region(
    image: np.ndarray, region: np.ndarray | tuple[int, int, int, int] | None
) -> np.ndarray:
    """The part of `image` a CLIP-S is computed on (see ClipScorer.score)."""
    image = np.asarray(image)
    if region is None:
        return image
    if isinstance(region, tuple | list):
        box = tuple(int(v) for v in region)
    else:
        found = region_box(region)
        if found is None:
            return image
        box = found
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return image
    return image[y0:y1, x0:x1]


def element_prompt(words: tuple[str, ...] | list[str], base: str = "a photo of a face") -> str:
    """The text scored for the edited elements: "a photo of a face with glasses and hat"."""
    words = [w.strip() for w in words if w and w.strip()]
    return f"{base} with {' and '.join(words)}" if words else base
