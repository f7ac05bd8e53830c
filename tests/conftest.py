"""Shared fixtures: tiny SD 1.x models built once per test session in a temp folder."""

from __future__ import annotations

import os

import pytest

# the main window's fixtures (photo_pair, settings, window) for every window test module
pytest_plugins = ["tests.window_fixtures"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    from engine.models.tiny import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd", seed=0)


@pytest.fixture(scope="session")
def exact_sd_dir(tmp_path_factory):
    from engine.models.tiny import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("models") / "exact-sd", exact_inversion=True)


@pytest.fixture
def folders(tmp_path):
    """Batch folders: 5 good pairs with assorted naming, a truncated JPEG, a text file
    named .jpg, an unpaired original, an unpaired edited file and a non-image file."""
    from tests.fixtures.batch import make_folders

    return make_folders(tmp_path)


@pytest.fixture()
def photo_pair(tmp_path):
    """A 160x200 pair for command-line tests: grace_hopper as JPEG and its negative."""
    import numpy as np
    from PIL import Image

    from tests.helpers import sample_photo

    photo = Image.open(sample_photo("grace_hopper")).convert("RGB").resize((160, 200))
    original, edited = tmp_path / "o.jpg", tmp_path / "e.png"
    photo.save(original)
    Image.fromarray(255 - np.asarray(photo)).save(edited)
    return original, edited
