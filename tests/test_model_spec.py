"""engine.models.spec.ModelSpec: the one description of the SD model to run, checked when
made, exact through JSON and pickle; built from the command line's options
(engine.cli.options) and carried to Ray workers (engine.batch.remote.WorkerSpec)."""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from engine.batch.remote import WorkerSpec
from engine.cli.options import (
    add_model_options,
    add_restorer_options,
    model_spec_from_args,
    restorer_from_args,
)
from engine.errors import ModelError
from engine.models.places import DEFAULT_SD_MODEL
from engine.models.spec import InvalidModelSpec, ModelSpec

# every field away from its default
FULL = ModelSpec(
    source="/models/my-sd",
    device="cuda:1",
    dtype="bf16",
    low_vram=True,
    cpu_offload=True,
    compile=True,
    compile_mode="reduce-overhead",
    allow_pickle=True,
    allow_download=True,
    models_dir="/models",
)


# --- validation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dtype": "fp8"}, "dtype: unknown dtype 'fp8': use fp16, bf16 or fp32"),
        ({"device": "tpu"}, "device: unknown device 'tpu': use auto, cpu, cuda or cuda:N"),
        ({"device": "cuda:x"}, "device: unknown device 'cuda:x'"),
        ({"compile_mode": "fast"}, "compile_mode: input should be 'default', 'reduce-overhead'"),
        ({"low_vram": "yes"}, "low_vram: input should be a valid boolean, got 'yes'"),
        ({"source": 5}, "source: input should be a valid string, got 5"),
        ({"colour": "red"}, "colour: extra inputs are not permitted"),
    ],
)
def test_bad_values_are_refused_naming_the_field(values, message):
    with pytest.raises(InvalidModelSpec) as caught:
        ModelSpec.checked(values)
    assert str(caught.value).startswith(f"Invalid model setting: {message}")
    assert isinstance(caught.value, ModelError)  # the command line's exit 3, as a bad load
    with pytest.raises(ValidationError):
        ModelSpec(**values)


def test_every_problem_is_named_by_the_callers_name_for_it():
    with pytest.raises(InvalidModelSpec) as caught:
        ModelSpec.checked({"dtype": "fp8", "device": "tpu"}, names={"dtype": "--dtype"})
    assert [where for where, _ in caught.value.problems] == ["device", "--dtype"]
    assert str(caught.value).startswith("Invalid model settings: device: unknown device")


def test_the_loaders_spellings_are_kept_in_one_form():
    spec = ModelSpec(device=" GPU ", dtype="Half", source=Path("/m/sd"), models_dir=Path("/m"))
    assert (spec.device, spec.dtype, spec.source, spec.models_dir) == (
        "cuda",
        "fp16",
        "/m/sd",
        "/m",
    )
    assert ModelSpec(device="auto", dtype="auto", source="  ") == ModelSpec()
    assert ModelSpec(device="CUDA:0", dtype="float32").model_dump(include={"device", "dtype"}) == {
        "device": "cuda:0",
        "dtype": "fp32",
    }
    assert ModelSpec(dtype="bfloat16").dtype == "bf16"
    assert ModelSpec().model_name == DEFAULT_SD_MODEL and FULL.model_name == "/models/my-sd"


def test_a_spec_is_frozen_and_hashable():
    with pytest.raises(ValidationError, match="frozen"):
        FULL.low_vram = False
    assert hash(FULL) == hash(FULL.model_copy()) and FULL != ModelSpec()


# --- serialised -------------------------------------------------------------------------
def test_json_round_trip_is_exact():
    text = FULL.to_json()
    assert json.loads(text) == {
        "source": "/models/my-sd", "device": "cuda:1", "dtype": "bf16", "low_vram": True,
        "cpu_offload": True, "compile": True, "compile_mode": "reduce-overhead",
        "allow_pickle": True, "allow_download": True, "models_dir": "/models",
    }  # fmt: skip
    again = ModelSpec.from_json(text)
    assert again == FULL and again.to_json() == text
    assert ModelSpec.from_json(ModelSpec().to_json()) == ModelSpec()
    assert ModelSpec.model_validate(FULL.model_dump()) == FULL


def test_json_that_is_not_a_spec_is_refused():
    with pytest.raises(InvalidModelSpec, match="dtype: unknown dtype 'fp8'"):
        ModelSpec.from_json('{"dtype": "fp8"}')
    with pytest.raises(InvalidModelSpec, match="extra inputs are not permitted"):
        ModelSpec.from_json('{"model": "x"}')
    with pytest.raises(InvalidModelSpec, match="invalid JSON"):
        ModelSpec.from_json("{not json")


# --- from the command line --------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    return parser


def test_each_option_sets_its_own_field():
    argv = ["--model", "/models/my-sd", "--device", "cuda:1", "--dtype", "bf16", "--low-vram",
            "--cpu-offload", "--compile", "--compile-mode", "reduce-overhead",
            "--allow-pickle", "--allow-download"]  # fmt: skip
    args = _parser().parse_args(argv)
    args.models_dir = Path("/models")  # eval's --models-dir
    assert model_spec_from_args(args) == FULL
    assert model_spec_from_args(_parser().parse_args([])) == ModelSpec()
    # one option at a time: each lands in its field and nowhere else
    flags = {"--low-vram": "low_vram", "--cpu-offload": "cpu_offload", "--compile": "compile",
             "--allow-pickle": "allow_pickle", "--allow-download": "allow_download"}  # fmt: skip
    for flag, field in flags.items():
        spec = model_spec_from_args(_parser().parse_args([flag]))
        assert spec == ModelSpec(**{field: True}), flag


def test_a_command_without_the_model_options_gets_the_defaults():
    assert model_spec_from_args(argparse.Namespace()) == ModelSpec()


def test_a_bad_option_is_named_by_its_flag():
    args = _parser().parse_args(["--dtype", "fp8", "--device", "tpu"])
    with pytest.raises(InvalidModelSpec) as caught:
        model_spec_from_args(args)
    assert [where for where, _ in caught.value.problems] == ["--device", "--dtype"]
    parser = argparse.ArgumentParser()
    add_restorer_options(parser)
    args = parser.parse_args(["--mode", "diffusion", "--dtype", "fp8"])
    with pytest.raises(ModelError, match="--dtype: unknown dtype 'fp8'"):
        restorer_from_args(args)  # refused before any loading
    args = parser.parse_args(["--mode", "classic", "--dtype", "fp8"])
    classic = restorer_from_args(args)  # no model: not read
    assert classic.name == "classic" and classic.model is None


def test_the_options_are_those_of_the_restore_command():
    parser = argparse.ArgumentParser()
    parser.add_argument("--allow-download", action="store_true", help="the command's own")
    add_model_options(parser)  # an option the command has already is left to it
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings}
    assert flags == {"-h", "--allow-download", "--model", "--device", "--dtype", "--low-vram",
                     "--cpu-offload", "--compile", "--compile-mode", "--allow-pickle"}  # fmt: skip
    own = next(a for a in parser._actions if "--allow-download" in a.option_strings)
    assert own.help == "the command's own"
    with pytest.raises(SystemExit):
        parser.parse_args(["--compile-mode", "fast"])


# --- to a Ray worker --------------------------------------------------------------------
def test_a_worker_spec_carries_the_model_spec_through_pickle_and_json():
    spec = WorkerSpec("diffusion", FULL)
    again = pickle.loads(pickle.dumps(spec))
    assert again.model == FULL and again.mode == "diffusion"
    assert ModelSpec.from_json(again.model.to_json()) == FULL
    assert pickle.loads(pickle.dumps(WorkerSpec("classic"))).model is None


def test_a_worker_loads_its_spec_on_its_own_gpu(monkeypatch):
    loaded = []
    monkeypatch.setattr(ModelSpec, "load", lambda self, **_: loaded.append(self) or "model")
    assert WorkerSpec("diffusion", FULL).build_restorer(gpu=True).model == "model"
    assert loaded[-1] == FULL.model_copy(update={"device": "cuda"})  # Ray's cuda:0 is its GPU
    WorkerSpec("diffusion", FULL).build_restorer(gpu=False)
    assert loaded[-1] == FULL
    WorkerSpec("diffusion").build_restorer(gpu=True)
    assert loaded[-1] == ModelSpec()
    classic = WorkerSpec("classic", FULL).build_restorer()
    assert classic.name == "classic" and classic.model is None
    assert len(loaded) == 3  # classic loads nothing


def test_the_cluster_panel_sends_the_windows_model_as_a_spec(tmp_path):
    from editedid_desktop.cluster_panel import model_spec
    from engine.restorers import get_restorer

    savers = SimpleNamespace(offload_encoders=True, vae_tiling=False, cpu_offload=True)
    hub = SimpleNamespace(model_id="org/sd", source_kind="hub", local_path=tmp_path,
                          low_memory=savers)  # fmt: skip
    # each worker finds the hub id in its own models folder, and picks its device
    assert model_spec(get_restorer("diffusion", model=hub)) == ModelSpec(
        source="org/sd", low_vram=True, cpu_offload=True
    )
    none = SimpleNamespace(offload_encoders=False, vae_tiling=False, cpu_offload=False)
    folder = SimpleNamespace(model_id="x", source_kind="folder", local_path=tmp_path,
                             low_memory=none)  # fmt: skip
    assert model_spec(get_restorer("diffusion", model=folder)) == ModelSpec(source=str(tmp_path))
    assert model_spec(get_restorer("diffusion")) == ModelSpec()
    assert model_spec(get_restorer("classic", model=hub)) is None


# --- loading ------------------------------------------------------------------------------
def test_load_builds_the_model_the_spec_names(tiny_sd_dir):
    model = ModelSpec(source=str(tiny_sd_dir), device="cpu", cpu_offload=True).load()
    assert model.local_path == tiny_sd_dir.resolve() and str(model.device) == "cpu"
    assert model.low_memory.cpu_offload and not model.low_memory.vae_tiling
    assert model.compiled_unet is None
