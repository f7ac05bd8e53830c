"""engine.restorers: the checked plugin contract, the registry, and both plugins' shape."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InputError, ModelError
from engine.models.spec import ModelSpec
from engine.params import EditedIDParams
from engine.photo.contract import CropJob, CropRestorer
from engine.restorers import RESTORERS, Restorer, get_restorer, register, restorer_class
from engine.restorers.classic import ClassicRestorer
from engine.restorers.diffusion import DiffusionRestorer


def test_registry_holds_both_modes_and_refuses_unknown_ones():
    assert RESTORERS == {"classic": ClassicRestorer, "diffusion": DiffusionRestorer}
    assert isinstance(get_restorer("classic"), ClassicRestorer)
    model = object()
    assert get_restorer("diffusion", model=model).model is model
    assert get_restorer("classic", model=model).crop_size(EditedIDParams()) is None
    with pytest.raises(InputError, match="Unknown mode 'magic'"):
        restorer_class("magic")
    for name in RESTORERS:
        assert isinstance(get_restorer(name), CropRestorer)


def test_a_plugin_missing_a_method_fails_at_registration():
    class Half(Restorer):
        name = "half"
        summary = "forgot restore"

        def check(self):
            pass

        def crop_size(self, params):
            return None

        def element_maps(self, edited_crops, params):
            return None

    with pytest.raises(TypeError, match="does not implement restore"):
        register(Half)

    class Nameless(ClassicRestorer):
        name = ""

    with pytest.raises(TypeError, match="'name'"):
        register(Nameless)
    with pytest.raises(TypeError, match="Two restorers"):
        register(type("Classic2", (ClassicRestorer,), {"summary": "again"}))
    assert "half" not in RESTORERS and RESTORERS["classic"] is ClassicRestorer


def test_diffusion_without_a_model_says_so():
    with pytest.raises(InputError, match="needs a Stable Diffusion model"):
        get_restorer("diffusion").check()
    get_restorer("classic").check()  # nothing to check


def test_from_spec_loads_a_model_only_for_a_restorer_that_needs_one(tiny_sd_dir):
    nowhere = ModelSpec(source="/nonexistent/model", device="cpu")
    assert isinstance(ClassicRestorer.from_spec(nowhere), ClassicRestorer)  # never loaded
    spec = ModelSpec(source=str(tiny_sd_dir), device="cpu", low_vram=True)
    restorer = DiffusionRestorer.from_spec(spec)
    assert restorer.model.local_path == tiny_sd_dir.resolve()
    assert restorer.model.low_memory.vae_tiling
    with pytest.raises(ModelError, match="/nonexistent/model"):
        DiffusionRestorer.from_spec(nowhere)


def test_the_contract_is_declared_once_and_duck_types_still_fit():
    # Restorer adds no method of its own to the pipeline's contract: one declaration.
    contract = {"check", "crop_size", "element_maps", "restore"}
    assert CropRestorer.__abstractmethods__ == contract
    assert CropRestorer in Restorer.__mro__  # (issubclass: not with a data member)
    assert Restorer.__abstractmethods__ == contract

    class StandIn:  # a test's fake restorer: no base class, the same methods
        name = "stand-in"

        def check(self):
            pass

        def crop_size(self, params):
            return None

        def element_maps(self, edited_crops, params, *, on_step=None, cancel=None):
            return None

        def restore(self, jobs, params, *, on_step=None, cancel=None, on_message=None):
            return None

    assert isinstance(StandIn(), CropRestorer)
    del StandIn.restore
    assert not isinstance(StandIn(), CropRestorer)


def test_classic_restores_jobs_and_keeps_the_element():
    size = 64
    rng = np.random.default_rng(0)
    edited = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
    original = rng.integers(140, 220, (size, size, 3), dtype=np.uint8)
    face = np.zeros((size, size), np.uint8)
    face[8:56, 8:56] = 255
    element = np.zeros_like(face)
    element[28:36, 8:56] = 255  # a band across the face: stays as edited
    job = CropJob(original, edited, face, element, name="face 1", require_element=False)
    restored = get_restorer("classic").restore([job], EditedIDParams())
    crop = restored.crops[0]
    assert crop.shape == edited.shape and restored.params is None
    assert np.array_equal(crop[element > 0], edited[element > 0])
    inside = (slice(16, 24), slice(16, 48))  # in the face, away from the band: the original
    assert np.abs(crop[inside].astype(int) - edited[inside]).mean() > 10
    assert np.array_equal(crop[0, 0], edited[0, 0])  # outside the face: untouched
    assert restored.regions[0] is face and restored.keeps[0] is element
    assert restored.warnings == [] and restored.element_attention == []
