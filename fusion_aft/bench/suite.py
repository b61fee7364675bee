"""Benchmark suites as data: a TOML file validated by pydantic (unknown keys are errors).

A suite lists tasks. Each task names a dataset (with options and a label budget), a student, the
teachers (card names, optionally with options: ``efficientnet-lite0?image_size=64``), the methods
to compare, the seeds, the training length and the β grid per method. Values missing on a task
come from the suite's ``[defaults]`` table. Suites never execute code.

Example::

    name = "tiny"
    [defaults]
    methods = ["none", "aft", "probe"]
    seeds = [0, 1]
    steps = 50
    [defaults.beta]
    aft = [1.0, 10.0]

    [[tasks]]
    name = "rt"
    dataset = "rotten_tomatoes"
    labels = 200
    student = "text_cnn"
    teachers = ["all-minilm-l6-v2", "paraphrase-minilm-l3-v2"]
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from fusion_aft.errors import UserInputError
from fusion_aft.registry import close_matches
from fusion_aft.training.selection import TieBreak

__all__ = [
    "PROBE",
    "BetaChoice",
    "Defaults",
    "ResolvedTask",
    "Suite",
    "TaskSpec",
    "load_suite",
    "suite_dir",
    "list_suites",
    "parse_teacher_ref",
]

#: the method name of the linear probe on the concatenated bank (not an objective)
PROBE = "probe"

#: a fixed β, a grid tuned by k-fold cross-validation on the labelled rows, or the trainer's own sweep
BetaChoice = float | list[float] | Literal["auto"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Training(_Strict):
    """Training settings shared by every cell of a task (None = take the suite default)."""

    steps: int | None = Field(None, gt=0, description="optimiser steps (exclusive with epochs)")
    epochs: int | None = Field(None, gt=0, description="whole passes over the labelled rows")
    batch_size: int | None = Field(None, ge=2)
    lr: float | None = Field(None, gt=0, description="student learning rate")
    objective_lr: float | None = Field(None, gt=0, description="lr of the objective's parameters (AFT's μ)")
    weight_decay: float | None = Field(None, ge=0)
    use_unlabelled: bool | None = Field(None, description="feed unlabelled rows to the regulariser")


class Defaults(Training):
    """Suite-wide defaults; every task may override any of them."""

    methods: list[str] = Field(default_factory=lambda: ["none", "kd", "rkd", "ft", "btune", "aft", PROBE])
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    beta: dict[str, BetaChoice] = Field(default_factory=dict, description="method -> β or grid or 'auto'")
    method_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="method -> options of its objective (e.g. aft = {compose = 'product'})",
    )
    holdout: float = Field(
        0.1, gt=0, lt=1, description="with beta_folds = 1: the labelled rows held out to tune β"
    )
    beta_folds: int = Field(
        3, ge=1, description="stratified folds of the labelled rows that tune β (1 = one holdout)"
    )
    tune_steps_fraction: float = Field(
        0.5, gt=0, le=1, description="steps of a β-tuning cell, as a fraction of a test cell's"
    )
    beta_tie_break: TieBreak = Field(
        "accuracy",
        description="among the β whose mean holdout cross-entropy is within one standard error of the "
        "lowest: the one with the highest mean holdout accuracy ('accuracy', as `fusion-aft train "
        "--beta auto`) or the largest ('largest')",
    )
    tune_seed: int = Field(0, description="seed of the β-tuning runs")
    data_seed: int = Field(0, description="seed of the label-budget and holdout draws (fixed across seeds)")
    ablation_method: str | None = Field("aft", description="method run on every teacher subset (None = off)")
    probe_c: float = Field(1.0, gt=0, description="inverse L2 strength of the linear probe")
    device: str = Field("auto", description="'auto' (CUDA if present), 'cpu', 'cuda', 'cuda:1' ...")
    extract_batch_size: int = Field(64, ge=1)


class TaskSpec(Training):
    """One task of a suite."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    dataset: str
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    labels: int | None = Field(None, gt=0, description="label budget drawn from train (None = all)")
    unlabelled: int | None = Field(
        None, ge=0, description="unlabelled rows kept for the regulariser (None = all the rest)"
    )
    student: str
    student_options: dict[str, Any] = Field(default_factory=dict)
    teachers: list[str] = Field(min_length=1)
    methods: list[str] | None = None
    seeds: list[int] | None = None
    beta: dict[str, BetaChoice] | None = None
    method_options: dict[str, dict[str, Any]] | None = None
    ablation: bool = Field(True, description="run the ablation method on every teacher subset")
    rows: dict[str, int] | None = Field(
        None, description="known split sizes (train/test), used by --dry-run when the data is not here"
    )
    notes: str = ""

    @field_validator("teachers")
    @classmethod
    def _unique_teachers(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("teachers must be distinct")
        return value


class Requirements(_Strict):
    """What a suite needs beyond this package (shown by --dry-run)."""

    gpu: bool = False
    internet: bool = False
    notes: str = ""


class Suite(_Strict):
    """A whole benchmark suite."""

    name: str
    description: str = ""
    requires: Requirements = Requirements()
    defaults: Defaults = Defaults()
    tasks: list[TaskSpec] = Field(min_length=1)
    source: str | None = Field(None, description="file the suite was read from (set by the loader)")
    _picked: list[str] | None = PrivateAttr(None)

    @property
    def picked_tasks(self) -> list[str] | None:
        """The tasks :meth:`only` kept (None: the suite as written)."""
        return self._picked

    @model_validator(mode="after")
    def _unique_task_names(self) -> Suite:
        names = [t.name for t in self.tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"task names must be unique; repeated: {', '.join(dup)}")
        return self

    def task(self, name: str) -> ResolvedTask:
        for t in self.tasks:
            if t.name == name:
                return resolve(self, t)
        raise UserInputError(f"suite '{self.name}' has no task '{name}'")

    def resolved(self) -> list[ResolvedTask]:
        """Every task with the defaults filled in."""
        return [resolve(self, t) for t in self.tasks]

    def only(self, names: list[str]) -> Suite:
        """The same suite with just the tasks ``names`` (in the suite's order); an unknown name is
        an error that lists the suite's tasks and the close matches."""
        known = [t.name for t in self.tasks]
        for name in names:
            if name not in known:
                near = close_matches(name, known)
                hint = f" (did you mean {', '.join(near)}?)" if near else ""
                raise UserInputError(
                    f"suite '{self.name}' has no task '{name}'{hint}; its tasks: {', '.join(known)}"
                )
        picked = self.model_copy(update={"tasks": [t for t in self.tasks if t.name in names]})
        picked._picked = [t.name for t in picked.tasks]
        return picked


class ResolvedTask(_Strict):
    """A task with every setting fixed (defaults applied); what the runner works from."""

    name: str
    dataset: str
    dataset_options: dict[str, Any]
    labels: int | None
    unlabelled: int | None
    student: str
    student_options: dict[str, Any]
    teachers: list[str]
    methods: list[str]
    seeds: list[int]
    beta: dict[str, BetaChoice]
    method_options: dict[str, dict[str, Any]]
    steps: int | None
    epochs: int | None
    batch_size: int
    lr: float
    objective_lr: float | None
    weight_decay: float
    use_unlabelled: bool
    holdout: float
    beta_folds: int
    tune_steps_fraction: float
    beta_tie_break: TieBreak
    tune_seed: int
    data_seed: int
    ablation_method: str | None
    probe_c: float
    device: str
    extract_batch_size: int
    rows: dict[str, int] | None
    notes: str

    def beta_for(self, method: str) -> BetaChoice:
        """The β setting of ``method`` (0 for STL and the probe, 1.0 when the suite is silent)."""
        if method in ("none", PROBE):
            return 0.0
        return self.beta.get(method, 1.0)


def resolve(suite: Suite, task: TaskSpec) -> ResolvedTask:
    """Fill a task's unset values from the suite defaults."""
    d = suite.defaults

    def pick(name: str, fallback: Any = None) -> Any:
        value = getattr(task, name)
        if value is None:
            value = getattr(d, name)
        return fallback if value is None else value

    beta = dict(d.beta)
    beta.update(task.beta or {})
    method_options = {m: dict(o) for m, o in d.method_options.items()}
    for m, o in (task.method_options or {}).items():
        method_options[m] = {**method_options.get(m, {}), **o}
    steps, epochs = task.steps, task.epochs
    if steps is None and epochs is None:
        steps, epochs = d.steps, d.epochs
    if steps is None and epochs is None:
        steps = 1000
    return ResolvedTask(
        name=task.name,
        dataset=task.dataset,
        dataset_options=task.dataset_options,
        labels=task.labels,
        unlabelled=task.unlabelled,
        student=task.student,
        student_options=task.student_options,
        teachers=task.teachers,
        methods=task.methods if task.methods is not None else d.methods,
        seeds=task.seeds if task.seeds is not None else d.seeds,
        beta=beta,
        method_options=method_options,
        steps=steps,
        epochs=epochs,
        batch_size=pick("batch_size", 128),
        lr=pick("lr", 1e-3),
        objective_lr=pick("objective_lr"),
        weight_decay=pick("weight_decay", 0.0),
        use_unlabelled=pick("use_unlabelled", True),
        holdout=d.holdout,
        beta_folds=d.beta_folds,
        tune_steps_fraction=d.tune_steps_fraction,
        beta_tie_break=d.beta_tie_break,
        tune_seed=d.tune_seed,
        data_seed=d.data_seed,
        ablation_method=(d.ablation_method if task.ablation else None),
        probe_c=d.probe_c,
        device=d.device,
        extract_batch_size=d.extract_batch_size,
        rows=task.rows,
        notes=task.notes,
    )


def parse_teacher_ref(ref: str) -> tuple[str, dict[str, str]]:
    """Split ``name?key=value&key=value`` into the card name and its options (strings): the one
    reader of teacher references, :func:`fusion_aft.teachers.card.parse_ref`."""
    from fusion_aft.teachers.card import parse_ref

    return parse_ref(ref)


# -- loading ------------------------------------------------------------------------------------
def suite_dir() -> Path:
    """The folder of the shipped suites (``benchmarks/suites`` in the source tree)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "benchmarks" / "suites", here / "suites"):
        if candidate.is_dir():
            return candidate
    return here.parent.parent / "benchmarks" / "suites"


def list_suites() -> list[str]:
    """Names of the shipped suites."""
    folder = suite_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def _locate(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UserInputError(f"suite file '{path}' does not exist")
        return path
    candidate = suite_dir() / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    from fusion_aft.registry import close_matches

    near = close_matches(str(name_or_path), list_suites())
    hint = f"close matches: {', '.join(near)}" if near else f"known: {', '.join(list_suites()) or 'none'}"
    raise UserInputError(f"unknown suite '{name_or_path}'; {hint} (or pass a path to a .toml file)")


def load_suite(name_or_path: str | Path) -> Suite:
    """Read and validate a suite by shipped name or path; errors name the file and the key."""
    path = _locate(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"suite '{path}': not valid TOML: {exc}") from None
    return parse_suite(data, source=str(path))


def parse_suite(data: dict[str, Any], source: str = "<dict>") -> Suite:
    """Validate a suite given as a dict (one-line error naming the key on failure)."""
    try:
        return Suite.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise UserInputError(f"suite '{source}': {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = sorted(
                set(TaskSpec.model_fields)
                | set(Defaults.model_fields)
                | set(Suite.model_fields)
                | set(Requirements.model_fields)
            )
            near = close_matches(str(err["loc"][-1]), known, n=3)
            hint = f"; did you mean {' or '.join(near)}?" if near else " (remove it or check its spelling)"
            parts.append(f"unknown key '{loc}'{hint}")
        else:
            parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
