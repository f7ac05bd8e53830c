"""ModelSpec: which Stable Diffusion model to run and how, as one checked, serialisable value.

    spec = ModelSpec(source="runwayml/stable-diffusion-v1-5", dtype="fp16", low_vram=True)
    text = spec.to_json()                        # what a Ray worker or a settings file keeps
    assert ModelSpec.from_json(text) == spec     # exact round trip
    model = spec.load()                          # an engine.models.loading.SDModel

It is the only description of a model that crosses a boundary: the command line builds
one from its options (engine.cli.options.model_spec_from_args), the app from its settings,
and a batch sends one to each Ray worker. Making it needs no torch (the app names its
model before the engine has loaded); `load` imports the loader.

Values are checked when the spec is made, so a typo fails before minutes of loading.
Spellings that the loader has always accepted are kept and stored in one form: "auto" and
"" (device, dtype) are None, "gpu" is "cuda", "half" or "float16" is "fp16", and so on.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from engine.errors import ModelError

DTYPES = ("fp16", "bf16", "fp32")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
# the loader's other names for each dtype (engine.models.devices reads the same words)
_DTYPE_WORDS = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "full": "fp32",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
}  # fmt: skip
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


class InvalidModelSpec(ModelError):
    """A model description that does not validate; the message names each field at fault
    (by the name its caller knows it by: a command-line flag, a setting)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        plural = "s" if len(problems) > 1 else ""
        text = "; ".join(f"{where}: {detail}" for where, detail in problems)
        super().__init__(f"Invalid model setting{plural}: {text}.")


def _text(value: Any) -> Any:
    """A path (Path, os.PathLike) as its text; anything else as given, for the type check."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _device_name(word: str) -> str | None:
    word = "cuda" if word == "gpu" else word
    return word if _DEVICE.fullmatch(word) else None


def _one_form(value: Any, kind: str, name: Callable[[str], str | None], choices: str) -> Any:
    """A device or dtype word as the spec keeps it: None for "" or "auto" (the engine
    picks), else `name(word)`; a word it does not know is refused, listing `choices`."""
    if not isinstance(value, str):
        return value  # None stays; anything else fails the field's type check
    word = value.strip().lower()
    if word in ("", "auto"):
        return None
    named = name(word)
    if named is None:
        message = f"unknown {kind} {{got}}: use {choices}"
        raise PydanticCustomError(kind, message, {"got": repr(value)})
    return named


class ModelSpec(BaseModel):
    """The SD model to run. Frozen: equal specs mean the same model (the app reuses a
    loaded model while its spec is unchanged).

    source: a diffusers folder, a single .safetensors file or a hub id; None = the default
        model (engine.models.places.DEFAULT_SD_MODEL), looked up in `models_dir`.
    device: "cpu", "cuda" or "cuda:N"; None = the best available.
    dtype: "fp16", "bf16" or "fp32"; None = fp16 on CUDA, fp32 on the CPU.
    low_vram: the memory savers of LowMemory.low_vram; cpu_offload: idle parts in RAM.
    compile / compile_mode: torch.compile the UNet (engine.models.compiled).
    allow_pickle: accept .ckpt/.bin weights (they can run code); allow_download: fetch a
        hub model that is not on this machine.
    models_dir: the models folder; None = engine.models.places.default_models_dir().
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str | None = None
    device: str | None = None
    dtype: Literal[DTYPES] | None = None  # type: ignore[valid-type]
    low_vram: StrictBool = False
    cpu_offload: StrictBool = False
    compile: StrictBool = False
    compile_mode: Literal[COMPILE_MODES] = "default"  # type: ignore[valid-type]
    allow_pickle: StrictBool = False
    allow_download: StrictBool = False
    models_dir: str | None = None

    @field_validator("source", "models_dir", mode="before")
    @classmethod
    def _path_text(cls, value: Any) -> Any:
        value = _text(value)
        if isinstance(value, str) and not value.strip():
            return None  # "" names nothing: the default, as --model "" always meant
        return value

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> Any:
        return _one_form(value, "device", _device_name, "auto, cpu, cuda or cuda:N")

    @field_validator("dtype", mode="before")
    @classmethod
    def _dtype(cls, value: Any) -> Any:
        return _one_form(value, "dtype", _DTYPE_WORDS.get, "fp16, bf16 or fp32 (or auto)")

    # -- made from and kept as data ------------------------------------------------------
    @classmethod
    def checked(
        cls, values: Mapping[str, Any], *, names: Mapping[str, str] | None = None
    ) -> ModelSpec:
        """The spec `values` describe, or InvalidModelSpec naming every field at fault by
        `names` (field -> what the caller calls it, e.g. "dtype" -> "--dtype")."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as error:
            raise _invalid(error, names or {}) from None

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        """The spec `to_json` wrote (InvalidModelSpec when it is not one)."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            raise _invalid(error, {}) from None

    def to_json(self) -> str:
        return self.model_dump_json()

    @property
    def model_name(self) -> str:
        """What the spec loads, for messages: the source, or the default model's hub id."""
        from engine.models.places import DEFAULT_SD_MODEL

        return self.source or DEFAULT_SD_MODEL

    # -- the model ---------------------------------------------------------------------
    def load(
        self,
        *,
        cancel: Callable[[], bool] | None = None,
        progress: Callable | None = None,
        on_message: Callable[[str], None] | None = None,
    ):
        """The SD model this spec names (ModelError when it cannot load). cancel and
        progress go to the loader (a download honours them); on_message hears why
        --compile fell back to the eager UNet (the log always does)."""
        from engine.models.loading import LowMemory, load_sd_model

        model = load_sd_model(
            self.model_name,
            device=self.device,
            dtype=self.dtype,
            allow_pickle=self.allow_pickle,
            allow_download=self.allow_download,
            models_dir=self.models_dir,
            low_memory=LowMemory.low_vram(self.low_vram, cpu_offload=self.cpu_offload),
            progress=progress,
            cancel=cancel,
        )
        if self.compile:
            from engine.models.compiled import compile_unet

            compile_unet(model, self.compile_mode, on_message=on_message)
        return model


def note_to_stderr(text: str) -> None:
    """on_message for a process without a window (the command line, a Ray worker)."""
    print(f"note: {text}", file=sys.stderr)


def _invalid(error: ValidationError, names: Mapping[str, str]) -> InvalidModelSpec:
    problems = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "spec"
        detail = item["msg"]
        if item["type"] not in ("device", "dtype"):  # pydantic's own words, with the value
            detail = f"{detail[:1].lower()}{detail[1:]}, got {item.get('input')!r}"
        problems.append((names.get(field, field), detail))
    return InvalidModelSpec(problems)
