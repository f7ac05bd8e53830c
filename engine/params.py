"""The one parameters object of EditedID: typed, validated, serialisable.

Defaults are the paper's (section 3, A.8) or, where the paper is silent, our choice,
named and documented here. The same object goes to the sidecar JSON, the project file
and the engine, unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from engine.errors import InputError

GATE_MODES = ("map", "output")
GATE_BLOCK_NAMES = ("down", "mid", "up")
CROSS_ATTENTION_HALVES = ("cond", "both")

# Bounds of every external number (CLI options, params JSON, sidecars, project files).
MAX_STEPS = 1000  # SD 1.x schedulers have 1000 training timesteps
MAX_RESOLUTION = 2048  # face crop side; 2048 px is 16x SD 1.x's 512 px area already
MAX_GUIDANCE = 30.0  # the app's range; beyond it CFG saturates (1e30 gave black images)
MAX_LEARNING_RATE = 10.0  # mix_lr; nulltext_lr is an Adam rate and stays <= 1
MAX_NULLTEXT_ITERS = 1000
MAX_SEED = 2**32 - 1  # what every seeded generator (torch, numpy) accepts
MAX_BATCH_FACES = 1024
MAX_PROMPT_CHARS = 1000  # CLIP reads 77 tokens; longer text is only a hostile file's
MAX_WORDS = 64
MAX_WORD_CHARS = 100


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 2, 40, 40, 4, 4


# --- the schema: ONE place where every parameter's type and bounds are checked ---------
def _shown(value: Any) -> str:
    """A short repr of what a file held (hostile values can be huge or deeply nested)."""
    return _REPR.repr(value)


def _whole_number(value: Any) -> int:
    """int, or a float/numpy number without a fraction (512.0 from JSON); never a bool."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if isinstance(value, numbers.Integral):
            return int(value)
        number = float(value)
        if math.isfinite(number) and number.is_integer():
            return int(number)
    raise PydanticCustomError(
        "whole_number", "must be a whole number, got {got}", {"got": _shown(value)}
    )


def _finite_number(value: Any) -> float:
    """A finite float from any real number (int, float, numpy); never a bool or a string."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            number = math.inf
        if math.isfinite(number):
            return number
    raise PydanticCustomError(
        "finite_number", "must be a finite number, got {got}", {"got": _shown(value)}
    )


def _words(value: Any) -> Any:
    """One word given as a string (CLI, hand-written JSON) is a list of one."""
    return (value,) if isinstance(value, str) else value


def _pair(value: Any) -> Any:
    if isinstance(value, list | tuple) and len(value) == 2:
        return value
    raise PydanticCustomError(
        "pair", "must be two numbers [a, b], got {got}", {"got": _shown(value)}
    )


def _bounded(kind: Any, convert, **bounds: Any) -> Any:
    return Annotated[kind, BeforeValidator(convert), Field(strict=True, **bounds)]


_Whole = _bounded(int, _whole_number)
_Real = _bounded(float, _finite_number)
_Unit = _bounded(float, _finite_number, ge=0.0, le=1.0)
_Word = Annotated[str, Field(strict=True, max_length=MAX_WORD_CHARS)]


class ParamsSchema(BaseModel):
    """Types and bounds of every `EditedIDParams` field (the dataclass holds the defaults).

    Every number is finite and bounded; ints are never bools or strings ("6"), a whole
    float (512.0) is an int; unknown keys are refused. Cross-field rules come last.
    """

    model_config = ConfigDict(extra="forbid", strict=False)

    steps: _bounded(int, _whole_number, ge=1, le=MAX_STEPS)
    dpm_range: Annotated[tuple[_Whole, _Whole], BeforeValidator(_pair)]
    init_mix: _bounded(float, _finite_number, ge=0.0, le=0.5)
    mix_lr: _bounded(float, _finite_number, ge=0.0, le=MAX_LEARNING_RATE)
    final_align_steps: _bounded(int, _whole_number, ge=1, le=MAX_STEPS)
    guidance: _bounded(float, _finite_number, ge=1.0, le=MAX_GUIDANCE)
    nulltext_iters: _bounded(int, _whole_number, ge=0, le=MAX_NULLTEXT_ITERS)
    nulltext_lr: _Unit
    nulltext_early_stop: _Unit
    overlap: Annotated[tuple[_Unit, _Unit], BeforeValidator(_pair)]
    gate_mode: Literal[GATE_MODES]  # type: ignore[valid-type]
    gate_blocks: Annotated[
        tuple[Literal[GATE_BLOCK_NAMES], ...],  # type: ignore[valid-type]
        BeforeValidator(_words),
        Field(max_length=len(GATE_BLOCK_NAMES) * 2),
    ]
    cross_attention: Annotated[bool, Field(strict=True)]
    cross_attention_halves: Literal[CROSS_ATTENTION_HALVES]  # type: ignore[valid-type]
    blend: Annotated[bool, Field(strict=True)]
    base_prompt: Annotated[str, Field(strict=True, max_length=MAX_PROMPT_CHARS)]
    face_words: Annotated[
        tuple[_Word, ...], BeforeValidator(_words), Field(min_length=1, max_length=MAX_WORDS)
    ]
    element_words: Annotated[
        tuple[_Word, ...], BeforeValidator(_words), Field(max_length=MAX_WORDS)
    ]
    alignment: Annotated[bool, Field(strict=True)]
    hybrid_solver: Annotated[bool, Field(strict=True)]
    gating: Annotated[bool, Field(strict=True)]
    seed: _bounded(int, _whole_number, ge=0, le=MAX_SEED)
    resolution: _bounded(int, _whole_number, ge=64, le=MAX_RESOLUTION, multiple_of=64)
    max_batch_faces: _bounded(int, _whole_number, ge=1, le=MAX_BATCH_FACES) | None

    @model_validator(mode="after")
    def _fit_together(self) -> ParamsSchema:
        start, end = self.dpm_range
        if not 0 <= start <= end <= self.steps:
            raise PydanticCustomError(
                "cross_field",
                "{field} [{start}, {end}) must lie within 0..steps ({steps}) with start <= end",
                {"field": "dpm_range", "start": start, "end": end, "steps": self.steps},
            )
        if self.final_align_steps > self.steps:
            raise PydanticCustomError(
                "cross_field",
                "{field} must be at most steps ({steps}), got {got}",
                {"field": "final_align_steps", "steps": self.steps,
                 "got": self.final_align_steps},
            )  # fmt: skip
        return self


@dataclass(frozen=True)
class Problem:
    """One invalid parameter: the field, where in it (`overlap[0]`), and what is wrong."""

    field: str
    where: str
    detail: str


def _explain(error: dict) -> str:
    ctx, got = error.get("ctx") or {}, _shown(error.get("input"))
    kind = error["type"]
    if kind in ("whole_number", "finite_number", "pair", "cross_field"):
        return error["msg"].removeprefix(f"{ctx.get('field')} ")
    texts = {
        "extra_forbidden": "is not a parameter of EditedID",
        "greater_than_equal": f"must be at least {ctx.get('ge')}, got {got}",
        "less_than_equal": f"must be at most {ctx.get('le')}, got {got}",
        "multiple_of": f"must be a multiple of {ctx.get('multiple_of')}, got {got}",
        "literal_error": f"must be one of {ctx.get('expected')}, got {got}",
        "string_type": f"must be text, got {got}",
        "bool_type": f"must be true or false, got {got}",
        "string_too_long": f"must be at most {ctx.get('max_length')} characters long",
        "too_long": f"may hold at most {ctx.get('max_length')} entries",
        "too_short": f"must hold at least {ctx.get('min_length')} entry",
        "tuple_type": f"must be a list, got {got}",
    }
    return texts.get(kind, f"{error['msg']}, got {got}")


def _problems(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = item["loc"]
        field = str(loc[0]) if loc else str((item.get("ctx") or {}).get("field", "params"))
        # A union's (max_batch_faces: int | None) branch names are not the user's business.
        index = "".join(f"[{part}]" for part in loc[1:] if isinstance(part, int))
        problems.append(Problem(field, field + index, _explain(item)))
    unique = {(p.where, p.detail): p for p in problems}  # a union reports once per branch
    return list(unique.values())


class InvalidParams(InputError):
    """Parameters that do not validate; `problems` names every field at fault.

    `source` names where they all came from (a file); `origins` where each field came
    from when they were gathered from several places (a file, then command-line options).
    """

    def __init__(
        self,
        problems: list[Problem],
        source: object | None = None,
        origins: Mapping[str, object] | None = None,
    ) -> None:
        self.problems, self.source = problems, source
        lines = []
        for p in problems:
            origin = (origins or {}).get(p.field)
            lines.append(f"{origin}: {p.where} {p.detail}" if origin else f"{p.where} {p.detail}")
        prefix = f"{source}: invalid parameter" if source else "Invalid parameter"
        plural = "s" if len(lines) > 1 else ""
        super().__init__(f"{prefix}{plural}: {'; '.join(lines)}.")

    def naming(self, origins: Mapping[str, object]) -> InvalidParams:
        """The same problems, each named with where its field came from."""
        return InvalidParams(self.problems, self.source, origins)


def validated(values: Mapping[str, Any], source: object | None = None) -> dict[str, Any]:
    """`values` (every field) checked by `ParamsSchema`, as the field types (tuples, ints,
    floats); InvalidParams naming each field at fault (and `source`, a file) otherwise."""
    try:
        checked = ParamsSchema.model_validate(dict(values))
    except ValidationError as error:
        raise InvalidParams(_problems(error), source) from None
    return {name: getattr(checked, name) for name in ParamsSchema.model_fields}


@dataclass(frozen=True)
class EditedIDParams:
    """Every knob of the method, with the paper's defaults.

    steps: diffusion steps N of inversion and reconstruction (paper A.8: 6).
    dpm_range: reconstruction steps [start, end) that use DPM-Solver++ (paper A.8: the
        last two of six, [4, 6)); the rest use DDIM. Empty range (s == e) = DDIM only.
    init_mix: initial adaptive mixing weight w (paper A.8: 0.04).
    mix_lr: learning rate of the gradient step on the alignment loss (eq. 1). The paper
        gives no value; 0.05 on the mean-squared latent distance lets w rise smoothly
        over six steps on SD latents (our choice).
    final_align_steps: last inversion steps over which w is forced to reach 0.5 (eq. 3).
    guidance: classifier-free guidance scale (7.5, as null-text inversion).
    nulltext_iters: Adam steps per diffusion step (null-text inversion: 10).
    nulltext_lr: Adam learning rate, decayed as lr * (1 - i / 100) (null-text inversion).
    nulltext_early_stop: stop a step's optimisation below eps + i * 2 * eps.
    overlap: (lambda_o, lambda_e) weights in the face/element overlap (eq. 8; 0.5, 0.5).
    gate_mode: "map" gates self-attention maps (eq. 7); "output" mixes layer outputs.
    gate_blocks: UNet parts whose self-attention is gated (paper A.5: down + mid).
    cross_attention: replace the target's cross-attention columns (eq. 9).
    cross_attention_halves: CFG halves where eq. 9 replaces columns: "cond" (the paper's
        reading and prompt-to-prompt's; the unconditional half's token positions are
        null-text padding) or "both" (ablation; the behaviour before 2026-11-30).
    blend: outside the union of masks keep the edited latent (Blended Diffusion).
    base_prompt: P_o; P_e = P_t = base_prompt + " with " + element words.
    face_words: token set T_o (words of base_prompt).
    element_words: token set T_e (words appended to P_e / P_t).
    alignment / hybrid_solver / gating: ablation switches (paper Table 7).
    seed: seeds torch before a run (the method itself is deterministic).
    resolution: side of the square face crops in pixels (SD 1.x: 512).
    max_batch_faces: most faces in one UNet batch; None = as many as fit.
    """

    steps: int = 6
    dpm_range: tuple[int, int] = (4, 6)
    init_mix: float = 0.04
    mix_lr: float = 0.05
    final_align_steps: int = 2
    guidance: float = 7.5
    nulltext_iters: int = 10
    nulltext_lr: float = 1e-2
    nulltext_early_stop: float = 1e-5
    overlap: tuple[float, float] = (0.5, 0.5)
    gate_mode: str = "map"
    gate_blocks: tuple[str, ...] = ("down", "mid")
    cross_attention: bool = True
    cross_attention_halves: str = "cond"
    blend: bool = True
    base_prompt: str = "a photo of a face"
    face_words: tuple[str, ...] = ("face",)
    element_words: tuple[str, ...] = ("glasses",)
    alignment: bool = True
    hybrid_solver: bool = True
    gating: bool = True
    seed: int = 0
    resolution: int = 512
    max_batch_faces: int | None = None

    def __post_init__(self) -> None:
        # Validated (and normalised: lists -> tuples, 512.0 -> 512) by ParamsSchema.
        for name, value in validated(dataclasses.asdict(self)).items():
            object.__setattr__(self, name, value)

    # -- prompts -----------------------------------------------------------------
    @property
    def original_prompt(self) -> str:
        return self.base_prompt

    @property
    def edited_prompt(self) -> str:
        words = " and ".join(w for w in self.element_words if w.strip())
        return f"{self.base_prompt} with {words}" if words else self.base_prompt

    @property
    def effective_dpm_range(self) -> tuple[int, int]:
        """dpm_range, or an empty range when the hybrid solver is switched off."""
        return self.dpm_range if self.hybrid_solver else (self.steps, self.steps)

    # -- validation --------------------------------------------------------------
    def validate(self) -> None:
        """Check every field again (the constructor already did; InvalidParams if not)."""
        validated(dataclasses.asdict(self))

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: object | None = None) -> EditedIDParams:
        """Parameters from a mapping of some fields (the rest default), validated once;
        InvalidParams names every field at fault and `source` (the file) when given."""
        if not isinstance(data, Mapping):
            where = f"{source}: p" if source else "P"
            raise InputError(f"{where}arameters must be a JSON object, got {_kind(data)}.")
        defaults = {f.name: getattr(_DEFAULTS, f.name) for f in dataclasses.fields(cls)}
        return cls(**validated({**defaults, **data}, source))

    def replace(self, **changes: Any) -> EditedIDParams:
        return dataclasses.replace(self, **changes)

    def inversion_key(self) -> dict[str, Any]:
        """The parameters that decide inversion and null-text results (the cache key).

        Masks, overlap weights, gate settings and blending are absent on purpose:
        changing them re-runs only the entanglement stage.
        """
        return {
            "steps": self.steps,
            "dpm_range": list(self.effective_dpm_range),
            "init_mix": self.init_mix,
            "mix_lr": self.mix_lr,
            "final_align_steps": self.final_align_steps,
            "guidance": self.guidance,
            "nulltext_iters": self.nulltext_iters,
            "nulltext_lr": self.nulltext_lr,
            "nulltext_early_stop": self.nulltext_early_stop,
            "original_prompt": self.original_prompt,
            "edited_prompt": self.edited_prompt,
            "alignment": self.alignment,
            "resolution": self.resolution,
            "seed": self.seed,
        }


_DEFAULTS = EditedIDParams()


# --- quality presets: the paper's speed knob (diffusion steps, null-text iterations) -------
# balanced = the paper's settings (6 steps, DPM-Solver++ on the last two, 10 null-text
# iterations as null-text inversion); fast keeps the paper's minimum viable 6 steps (its
# A.8 step ablation) and cuts null-text to 3 iterations (~2.5x less work); best takes 10
# steps, the paper's tested range, DPM-Solver++ again on the last two. Our choice where
# the paper gives the ablation but no named settings.
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {"steps": 6, "dpm_range": (4, 6), "nulltext_iters": 3},
    "balanced": {"steps": 6, "dpm_range": (4, 6), "nulltext_iters": 10},
    "best": {"steps": 10, "dpm_range": (8, 10), "nulltext_iters": 10},
}


def with_preset(params: EditedIDParams, name: str) -> EditedIDParams:
    """`params` with preset `name`'s steps, DPM-Solver++ range and null-text iterations."""
    if name not in PRESETS:
        raise InputError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return params.replace(**PRESETS[name])


def preset_of(params: EditedIDParams) -> str | None:
    """The preset whose settings `params` has, None when they match none (custom)."""
    for name, values in PRESETS.items():
        if all(getattr(params, k) == v for k, v in values.items()):
            return name
    return None


def _kind(value: Any) -> str:
    """A JSON value's kind, as a user reading the file would call it."""
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false",
             int: "a number", float: "a number", type(None): "null"}  # fmt: skip
    return names.get(type(value), f"a {type(value).__name__}")


def params_in_document(data: Any, source: object | None = None) -> dict[str, Any] | None:
    """The parameters mapping (not yet validated) in a decoded JSON document: a parameters
    object itself, or a sidecar's "params" (else its "diagnostics"."params"); None for a
    classic-mode sidecar, which records none ("params": null). InputError naming `source`
    (the file) and the field for any other shape."""
    at = f"{source}: " if source else ""
    if not isinstance(data, dict):
        raise InputError(
            f"{at}expected a JSON object of parameters (or a sidecar), got {_kind(data)}."
        )
    if "params" not in data and "diagnostics" not in data:
        return data
    params = data.get("params")
    diagnostics = data.get("diagnostics")
    if diagnostics is not None and not isinstance(diagnostics, dict):
        raise InputError(f'{at}"diagnostics" must be an object, got {_kind(diagnostics)}.')
    if params is None and diagnostics is not None and "params" in diagnostics:
        params = diagnostics["params"]
        if not isinstance(params, dict | None):
            raise InputError(f'{at}"diagnostics.params" must be an object, got {_kind(params)}.')
    if params is not None and not isinstance(params, dict):
        raise InputError(f'{at}"params" must be an object or null, got {_kind(params)}.')
    return params


def load_params(data: Any, source: object | None = None) -> EditedIDParams | None:
    """Parameters from a decoded JSON document (see `params_in_document`: a parameters
    object, some fields and the rest default, or a sidecar), checked by ParamsSchema; None
    for a classic-mode sidecar. InputError names `source` (the file) and the field.

    The one reader of parameters from files: --params-json, sidecars, project files.
    """
    params = params_in_document(data, source)
    return None if params is None else EditedIDParams.from_dict(params, source)


# One line per parameter: the CLI's --help and the app's tooltips.
PARAM_HELP: dict[str, str] = {
    "steps": "Diffusion steps of inversion and reconstruction (paper: 6; more = slower, finer).",
    "dpm_range": "Steps [start, end) using DPM-Solver++ (detail); the rest use DDIM (identity).",
    "init_mix": "Starting weight of adaptive latent mixing (paper: 0.04; larger blends more).",
    "mix_lr": "Learning rate of the mixing weight's gradient step on the alignment loss.",
    "final_align_steps": "Last inversion steps over which the mixing weight is driven to 0.5.",
    "guidance": "Classifier-free guidance scale used in reconstruction (7.5).",
    "nulltext_iters": "Null-text optimisation iterations per step (10; 0 = no optimisation).",
    "nulltext_lr": "Adam learning rate of null-text optimisation (decays per step).",
    "nulltext_early_stop": "Stop a step's null-text optimisation once its loss is below this.",
    "overlap": "Weights (original, edited) where face and element masks overlap (0.5 0.5).",
    "gate_mode": "'map' gates self-attention maps (paper); 'output' mixes attention outputs.",
    "gate_blocks": "UNet parts whose self-attention is gated: down, mid, up (paper: down mid).",
    "cross_attention": "Face tokens' cross-attention from the original, elements' from the edit.",
    "cross_attention_halves": "CFG halves for the token replacement: cond (paper) or both.",
    "blend": "Keep the edited photo exactly outside the face and element masks.",
    "base_prompt": "Prompt describing the crop; element words are appended after 'with'.",
    "face_words": "Words of the base prompt that carry identity (token set T_o).",
    "element_words": "Edited elements to keep, e.g. glasses, hat (token set T_e).",
    "alignment": "Adaptive-mixing dual inversion (switch off only for ablations).",
    "hybrid_solver": "DPM-Solver++ in dpm_range (off = DDIM only; for ablations).",
    "gating": "Attentional gating (off = plain reconstruction; for ablations).",
    "seed": "Random seed (the method is deterministic; recorded for reproducibility).",
    "resolution": "Side of the square face crop in pixels (SD 1.x: 512).",
    "max_batch_faces": "Most faces per GPU batch (empty = all; halved on out-of-memory).",
}
