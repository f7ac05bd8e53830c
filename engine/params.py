"""The one parameters object of EditedID: typed, validated, serialisable.

Defaults are the paper's (section 3, A.8) or, where the paper is silent, our choice,
named and documented here. The same object goes to the sidecar JSON, the project file
and the engine, unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from engine.errors import InputError

GATE_MODES = ("map", "output")
GATE_BLOCK_NAMES = ("down", "mid", "up")
CROSS_ATTENTION_HALVES = ("cond", "both")


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
        # Accept lists from JSON / CLI and store tuples so the object stays hashable.
        for name in ("dpm_range", "overlap", "gate_blocks", "face_words", "element_words"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        self.validate()

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
        def bad(msg: str) -> InputError:
            return InputError(f"Invalid parameter: {msg}")

        if not 1 <= self.steps <= 1000:
            raise bad(f"steps must be between 1 and 1000, got {self.steps}.")
        if len(self.dpm_range) != 2:
            raise bad(f"dpm_range must be two numbers [start, end), got {self.dpm_range}.")
        start, end = self.dpm_range
        if not 0 <= start <= end <= self.steps:
            raise bad(
                f"dpm_range [{start}, {end}) must lie within 0..steps ({self.steps}) "
                "with start <= end."
            )
        if not 0.0 <= self.init_mix <= 0.5:
            raise bad(f"init_mix must be in [0, 0.5], got {self.init_mix}.")
        if self.mix_lr < 0:
            raise bad(f"mix_lr must be >= 0, got {self.mix_lr}.")
        if not 1 <= self.final_align_steps <= self.steps:
            raise bad(
                f"final_align_steps must be between 1 and steps ({self.steps}), "
                f"got {self.final_align_steps}."
            )
        if self.guidance < 1.0:
            raise bad(f"guidance must be >= 1, got {self.guidance}.")
        if self.nulltext_iters < 0:
            raise bad(f"nulltext_iters must be >= 0, got {self.nulltext_iters}.")
        if len(self.overlap) != 2 or any(not 0.0 <= v <= 1.0 for v in self.overlap):
            raise bad(f"overlap must be two weights in [0, 1], got {self.overlap}.")
        if self.gate_mode not in GATE_MODES:
            raise bad(f"gate_mode must be one of {GATE_MODES}, got {self.gate_mode!r}.")
        if self.cross_attention_halves not in CROSS_ATTENTION_HALVES:
            raise bad(
                f"cross_attention_halves must be one of {CROSS_ATTENTION_HALVES}, "
                f"got {self.cross_attention_halves!r}."
            )
        unknown = [b for b in self.gate_blocks if b not in GATE_BLOCK_NAMES]
        if unknown:
            raise bad(f"gate_blocks may only hold {GATE_BLOCK_NAMES}, got {unknown}.")
        if not self.face_words:
            raise bad("face_words must name at least one word of the base prompt.")
        if self.resolution % 64 != 0 or self.resolution < 64:
            raise bad(f"resolution must be a multiple of 64, got {self.resolution}.")
        if self.max_batch_faces is not None and self.max_batch_faces < 1:
            raise bad(f"max_batch_faces must be >= 1 or None, got {self.max_batch_faces}.")

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EditedIDParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"Unknown parameter(s): {', '.join(unknown)}.")
        return cls(**data)

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
