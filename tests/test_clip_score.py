"""engine.evaluation.clip_score: CLIP-S with a tiny random CLIP saved like a real one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import ModelError, ModelNotFoundError
from engine.evaluation.clip_score import (
    DEFAULT_CLIP_MODEL,
    ClipScorer,
    crop_region,
    element_prompt,
    region_box,
)
from tests.fixtures.clip import build_tiny_clip
from tests.helpers import sample_photo


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def scorer(clip_dir) -> ClipScorer:
    return ClipScorer.load(clip_dir)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(sample_photo("grace_hopper")).convert("RGB"))


def test_loads_from_folder(clip_dir, scorer):
    assert scorer.model_id == "tiny-clip"
    ids = scorer.tokenizer("a photo of a man")["input_ids"]
    assert ids == [49406, 320, 1125, 539, 320, 786, 49407]  # the real CLIP vocabulary
    assert scorer.describe()["device"] == "cpu"


def test_scores_are_deterministic_and_depend_on_text(clip_dir, scorer, photo):
    a = scorer.score(photo, "a photo of a face with glasses")
    assert a == scorer.score(photo, "a photo of a face with glasses")
    again = ClipScorer.load(clip_dir).score(photo, "a photo of a face with glasses")
    assert again == pytest.approx(a, abs=1e-5)
    b = scorer.score(photo, "a photo of a face with a red hat")
    print(f"tiny CLIP-S glasses {a:.3f} hat {b:.3f}")
    assert -100.0 <= a <= 100.0 and -100.0 <= b <= 100.0
    assert abs(a - b) > 1e-4


def test_region_crop_changes_the_score(scorer, photo):
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[150:250, 150:350] = 255
    box = region_box(mask)
    assert box == (130, 140, 370, 260)
    assert crop_region(photo, mask).shape == (120, 240, 3)
    assert crop_region(photo, np.zeros_like(mask)).shape == photo.shape  # empty: whole image
    whole = scorer.score(photo, "glasses")
    assert scorer.score(photo, "glasses", region=mask) != whole
    assert scorer.score(photo, "glasses", region=box) == scorer.score(photo, "glasses", region=mask)


def test_element_prompt():
    assert element_prompt(["glasses", "hat"]) == "a photo of a face with glasses and hat"
    assert element_prompt([]) == "a photo of a face"


def test_missing_hub_model_says_how_to_get_it(tmp_path):
    with pytest.raises(ModelNotFoundError) as info:
        ClipScorer.load(DEFAULT_CLIP_MODEL, models_dir=tmp_path)
    message = str(info.value)
    assert "not on this machine" in message and "--allow-download" in message
    assert str(tmp_path / "openai--clip-vit-large-patch14") in message


def test_missing_path_and_wrong_folders(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        ClipScorer.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        ClipScorer.load(tmp_path / "empty")


def test_hub_id_found_in_models_dir(clip_dir, tmp_path):
    shutil.copytree(clip_dir, tmp_path / "someone--tiny-clip")
    scorer = ClipScorer.load("someone/tiny-clip", models_dir=tmp_path)
    assert scorer.model_id == "someone/tiny-clip"


def test_pickle_weights_refused(clip_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(clip_dir, folder)
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(ModelError, match="pickle"):
        ClipScorer.load(folder)
