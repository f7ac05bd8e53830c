"""EditedIDParams: one validation layer for every external number (issue 11)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.errors import InputError
from engine.params import MAX_RESOLUTION, EditedIDParams, load_params

BAD_VALUES = [
    ("guidance", math.nan),
    ("guidance", math.inf),
    ("guidance", 1e30),
    ("guidance", 0.5),
    ("nulltext_lr", math.nan),
    ("nulltext_lr", -0.01),
    ("nulltext_early_stop", -1.0),
    ("nulltext_early_stop", math.inf),
    ("mix_lr", -math.inf),
    ("init_mix", math.nan),
    ("seed", 2**70),
    ("seed", -1),
    ("resolution", 32768),
    ("resolution", 100),
    ("resolution", 0),
    ("steps", 0),
    ("steps", 10**6),
    ("steps", True),
    ("nulltext_iters", -1),
    ("nulltext_iters", 10**9),
    ("overlap", (math.nan, 0.5)),
    ("overlap", (0.5, 2.0)),
    ("overlap", (0.5,)),
    ("dpm_range", (5, 4)),
    ("dpm_range", (4, 7)),
    ("final_align_steps", 0),
    ("max_batch_faces", 0),
    ("max_batch_faces", "all"),
    ("gate_mode", "both"),
    ("gate_blocks", ("left",)),
    ("cross_attention_halves", "uncond"),
    ("cross_attention", "yes"),
    ("base_prompt", "x" * 100_000),
    ("element_words", ("w",) * 1000),
    ("face_words", ()),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_values_are_refused_naming_the_field(field, value):
    with pytest.raises(InputError, match=field):
        EditedIDParams(**{field: value})
    with pytest.raises(InputError, match=field):
        EditedIDParams.from_dict({field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("steps", "6"), ("guidance", "7.5"), ("seed", 1.5), ("blend", 1), ("overlap", "0.5")],
)
def test_wrong_types_are_refused_naming_the_field(field, value):
    with pytest.raises(InputError, match=field):
        EditedIDParams.from_dict({field: value})


def test_every_problem_is_named_at_once():
    with pytest.raises(InputError) as caught:
        EditedIDParams.from_dict({"guidance": math.nan, "seed": -1, "colour": 1})
    message = str(caught.value)
    assert "guidance" in message and "seed" in message and "colour" in message


def test_numbers_are_normalised_to_their_field_types():
    params = EditedIDParams.from_dict({"resolution": 512.0, "guidance": 7, "seed": np.int64(3)})
    assert params.resolution == 512 and type(params.resolution) is int
    assert params.guidance == 7.0 and type(params.guidance) is float
    assert params.seed == 3 and type(params.seed) is int
    assert EditedIDParams(element_words="hat").element_words == ("hat",)


def test_resolution_has_a_documented_maximum():
    assert EditedIDParams(resolution=MAX_RESOLUTION).resolution == MAX_RESOLUTION
    with pytest.raises(InputError, match=f"at most {MAX_RESOLUTION}"):
        EditedIDParams(resolution=MAX_RESOLUTION + 64)


def test_defaults_and_edges_are_valid_and_round_trip():
    for params in (
        EditedIDParams(),
        EditedIDParams(cross_attention_halves="both", max_batch_faces=1, seed=2**32 - 1),
        EditedIDParams(guidance=1.0, nulltext_lr=0.0, nulltext_iters=0, dpm_range=(6, 6)),
    ):
        assert EditedIDParams.from_dict(params.to_dict()) == params
        assert load_params(params.to_dict()) == params


def test_replace_validates():
    with pytest.raises(InputError, match="guidance"):
        EditedIDParams().replace(guidance=math.nan)


def test_load_params_names_the_file_and_field(tmp_path):
    source = tmp_path / "p.json"
    with pytest.raises(InputError, match=r"p\.json.*guidance"):
        load_params({"guidance": math.inf}, source=source)
    with pytest.raises(InputError, match=r"p\.json.*JSON object"):
        load_params([1, 2], source=source)


def test_load_params_reads_bare_objects_and_sidecars():
    params = {"steps": 8, "dpm_range": [6, 8]}
    expected = EditedIDParams(steps=8, dpm_range=(6, 8))
    assert load_params(params) == expected
    assert load_params({"tool": "EditedID Desktop", "params": params, "faces": []}) == expected
    assert load_params({"tool": "x", "diagnostics": {"params": params}}) == expected
    # A classic-mode sidecar records no parameters.
    assert load_params({"tool": "EditedID Desktop", "mode": "classic", "params": None}) is None


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"params": [1, 2]}, "params"),
        ({"params": "steps=6"}, "params"),
        ({"diagnostics": "none"}, "diagnostics"),
        ({"diagnostics": {"params": 3}}, "diagnostics.params"),
        ({"params": {"max_batch_faces": "all"}}, "max_batch_faces"),
    ],
)
def test_load_params_refuses_malformed_sidecars_naming_the_field(document, field):
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        load_params(document, source="side.json")
