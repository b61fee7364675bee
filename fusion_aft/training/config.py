"""The training configuration: one validated object per run (also read from TOML / written as JSON).

Defaults follow the protocol of Qiu et al. 2024 (§4, "Experimental setup"): Adam, batch 128,
about 5000 steps rounded up to whole epochs, weight decay 0, cosine decay of every parameter
group, no augmentation; β tuned by 3-fold cross-validation on the labelled training rows
(the paper tunes it on a 10% holdout, whose few rows make the choice noisy on small tasks).
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fusion_aft.errors import UserInputError
from fusion_aft.training.selection import Rule, TieBreak

DEFAULT_BETA_GRID: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)

#: keys added since run folders were first written, with the value that reproduces a run saved
#: without them: such a run resumes under that value (e.g. ``final_steps="given"``)
ADDED_KEYS: dict[str, Any] = {
    "beta_metric": "cross_entropy",
    "final_steps": "given",
    "beta_zero_unless_better": False,
    "beta_accuracy_guard": "off",
    "beta_tie_break": "largest",
}

#: keys that may change between a run and its resumption (they do not change the maths)
OPERATIONAL_KEYS = frozenset(
    {
        "out",
        "resume",
        "num_workers",
        "tensorboard",
        "cache_dir",
        "checkpoint_every",
        "log_every",
        "device",
        "progress",
        "extract_batch_size",
        "cache_inputs",
        "prefetch",
    }
)


class TrainConfig(BaseModel):
    """Everything one training run needs; unknown keys are refused.

    ``beta="auto"`` sweeps ``beta_grid`` by ``beta_folds``-fold cross-validation on the labelled
    training rows (candidates run ``sweep_steps_fraction`` of the steps), chooses β by holdout
    cross-entropy under ``beta_rule`` and retrains on all of them, for as many steps as the
    candidates unless ``final_steps="given"``; a number is used as given.
    Give either ``steps`` or ``epochs``; by default about ``target_steps`` steps, rounded up to
    whole epochs of the labelled rows.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # data
    dataset: str = Field(description="dataset name (fusion-aft datasets list)")
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    n_labels: int | None = Field(None, ge=1, description="labelled training rows to keep (None = all)")
    n_unlabelled: int | None = Field(None, ge=0, description="unlabelled rows (None = the rest)")
    use_unlabelled: bool | None = Field(
        None,
        description="apply the objective to unlabelled rows too: the dataset's own (an 'unlabelled' split, "
        "rows with an empty label, images under unlabelled/) and those a label budget leaves; "
        "None = whenever there are any",
    )
    unlabelled_batch_size: int | None = Field(None, ge=1, description="unlabelled rows per step")
    # models
    student: str | None = Field(
        None,
        description="student name; None = the default of the dataset's modality (students.DEFAULT_STUDENTS)",
    )
    student_options: dict[str, Any] = Field(default_factory=dict)
    teachers: list[str] = Field(default_factory=list)
    method: str = "aft"
    method_options: dict[str, Any] = Field(default_factory=dict)
    # β
    beta: float | Literal["auto"] = 1.0
    beta_grid: list[float] = Field(default_factory=lambda: list(DEFAULT_BETA_GRID))
    holdout_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="the one holdout when beta_folds = 1")
    beta_folds: int = Field(
        3, ge=1, description="stratified folds of the labelled rows for beta='auto' (1 = one holdout)"
    )
    sweep_steps_fraction: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="steps of each β candidate, as a fraction of steps / epochs / target_steps",
    )
    final_steps: Literal["sweep", "given"] = Field(
        "sweep",
        description="length of the final run after beta='auto': 'sweep' trains it for the candidates' "
        "steps, the length β was chosen at; 'given' for steps / epochs / target_steps",
    )
    beta_patience: int = Field(
        2,
        ge=0,
        description="beta='auto' stops climbing the grid after this many β values past the lowest "
        "holdout loss are ruled out by beta_rule (0 = run the whole grid)",
    )
    beta_metric: Literal["cross_entropy", "calibrated_cross_entropy"] = Field(
        "cross_entropy",
        description="holdout score of beta='auto': mean cross-entropy, or the cross-entropy after "
        "dividing each run's logits by its best temperature (fusion_aft.training.calibration)",
    )
    beta_zero_unless_better: bool = Field(
        True,
        description="beta='auto' keeps β = 0 (the student alone, when the grid has it) unless a β > 0 "
        "beats its mean holdout loss by more than beta_rule's margin (one standard error)",
    )
    beta_accuracy_guard: float | Literal["off"] = Field(
        0.0,
        description="beta='auto' trains the student alone instead of the chosen β > 0 when that β's "
        "mean holdout accuracy is below β = 0's by more than this many standard errors of the "
        "per-fold difference (0: any drop; needs β = 0 in the grid and 2+ folds; 'off' = no check)",
    )
    beta_tie_break: TieBreak = Field(
        "accuracy",
        description="how beta_rule 'one_se' picks among the β whose mean holdout loss is within one "
        "standard error of the lowest: the highest mean holdout accuracy, or the largest β",
    )
    beta_rule: Rule = Field(
        "one_se",
        description="one_se: among the β whose mean holdout cross-entropy is within one standard "
        "error of the lowest, the one beta_tie_break picks; min: the lowest mean",
    )
    # optimisation
    seed: int = 0
    steps: int | None = None
    epochs: int | None = None
    target_steps: int = Field(5000, ge=1, description="default length, rounded up to whole epochs")
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    objective_lr: float | None = Field(
        None,
        gt=0.0,
        description="lr of the objective's own parameters (AFT's μ); None = its default; "
        "heads that learn at the student's lr (KD, RKD, FT) keep it",
    )
    weight_decay: float = Field(0.0, ge=0.0)
    schedule: Literal["cosine", "constant"] = "cosine"
    augment: bool = False
    global_kernel: bool = Field(
        False, description="under torchrun: AFT kernel over the gathered global batch, not each process's"
    )
    # machinery
    device: str = "auto"
    amp: bool = True
    checkpoint_every: int = Field(1000, ge=0, description="steps between checkpoints (0 = only at the end)")
    log_every: int = Field(50, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    out: Path | None = None
    cache_dir: Path | None = None
    extract_batch_size: int = Field(64, ge=1)
    num_workers: int = Field(0, ge=0)
    prefetch: int = Field(
        2,
        ge=0,
        description="with num_workers=0: batches (inputs and bank rows) prepared ahead in a background "
        "thread while the current step runs (0 = prepare each batch in the training thread)",
    )
    cache_inputs: bool = Field(True, description="keep small prepared inputs (token ids) in memory")
    tensorboard: bool = False
    progress: bool = True
    resume: bool = False

    @field_validator("beta", mode="before")
    @classmethod
    def _beta(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().lower() == "auto":
                return "auto"
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"beta must be a number >= 0 or 'auto', got {value!r}") from None
        if isinstance(value, int | float) and (value < 0 or not math.isfinite(value)):
            raise ValueError(f"beta must be >= 0 (or 'auto'), got {value}")
        return value

    @field_validator("beta_accuracy_guard")
    @classmethod
    def _guard(cls, value: float | str) -> float | str:
        if value != "off" and not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"beta_accuracy_guard must be a number of standard errors >= 0 or 'off', got {value}"
            )
        return value

    @property
    def accuracy_guard_se(self) -> float | None:
        """``beta_accuracy_guard`` as a number of standard errors, None when it is ``'off'``."""
        return None if self.beta_accuracy_guard == "off" else float(self.beta_accuracy_guard)

    @field_validator("beta_grid")
    @classmethod
    def _grid(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("beta_grid is empty; give at least one value, e.g. [0.1, 1, 10]")
        bad = [v for v in value if v < 0 or not math.isfinite(v)]
        if bad:
            raise ValueError(f"beta_grid values must be finite and >= 0, got {bad}")
        return list(value)

    @field_validator("steps", "epochs")
    @classmethod
    def _positive(cls, value: int | None, info: Any) -> int | None:
        if value is not None and value <= 0:
            raise ValueError(f"{info.field_name} must be > 0, got {value}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in ("auto", "cpu") and not value.startswith(("cuda", "mps")):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")
        return value

    @field_validator("teachers", mode="before")
    @classmethod
    def _teachers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give either steps or epochs, not both")
        if self.n_unlabelled and self.use_unlabelled is False:
            raise ValueError("n_unlabelled is set but use_unlabelled is false; set use_unlabelled=true")
        if self.n_unlabelled is not None and self.n_labels is None:
            raise ValueError("n_unlabelled needs n_labels (the label budget that leaves rows unlabelled)")
        if len(set(self.teachers)) != len(self.teachers):
            raise ValueError(f"teachers are listed twice: {self.teachers}")
        return self

    # -- derived ---------------------------------------------------------------------------------
    def semantic_dict(self) -> dict[str, Any]:
        """The keys that define the run's maths (what a resumed run must share)."""
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if k not in OPERATIONAL_KEYS}


def load_config(
    config: TrainConfig | dict[str, Any] | str | Path | None = None, **overrides: Any
) -> TrainConfig:
    """Build a :class:`TrainConfig` from an object, a dict or a TOML file, plus keyword overrides.

    Validation errors become one :class:`UserInputError` naming each bad key.
    """
    if isinstance(config, TrainConfig):
        data = config.model_dump()
    elif isinstance(config, str | Path):
        data = read_toml(Path(config))
    else:
        data = dict(config or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**data)
    except ValidationError as exc:
        raise UserInputError("invalid training config: " + describe_validation_error(exc)) from None


def read_toml(path: Path) -> dict[str, Any]:
    """A config file: flat keys, or a ``[train]`` table."""
    if not path.is_file():
        raise UserInputError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"config file {path} is not valid TOML: {exc}") from None
    return dict(data.get("train", data))


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling; see TrainConfig for the accepted keys)"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def steps_per_epoch(n_rows: int, batch_size: int, min_batch: int = 1) -> int:
    """Batches per epoch: every row once, the last batch smaller; a trailing batch below
    ``min_batch`` rows (B = 1 for pair objectives) is dropped instead."""
    if n_rows <= 0:
        raise UserInputError("the training split is empty")
    full, rest = divmod(n_rows, batch_size)
    if rest and (rest >= min_batch or full == 0):
        return full + 1
    return max(full, 1)


def resolve_steps(cfg: TrainConfig, n_rows: int, min_batch: int = 1) -> int:
    """Total optimiser steps: ``steps``, or ``epochs`` × steps/epoch, or ``target_steps``
    rounded up to whole epochs."""
    if cfg.steps is not None:
        return cfg.steps
    per_epoch = steps_per_epoch(n_rows, cfg.batch_size, min_batch)
    if cfg.epochs is not None:
        return cfg.epochs * per_epoch
    return math.ceil(cfg.target_steps / per_epoch) * per_epoch
