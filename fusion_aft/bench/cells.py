"""Cells: the unit of work of a suite, one (task, method, teacher subset, seed[, β]) each.

Two kinds:

* ``tune`` cells train on the labelled rows minus one of ``beta_folds`` stratified folds and score
  on that fold, once per (β of a method's grid, fold) (never on the test split);
* ``run`` cells train on all labelled rows with the chosen β and score on the test split.

Every cell has a stable key (its file name) and a digest of everything that determines its
result; a finished cell whose digest matches is never run again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any, Literal

from fusion_aft.bench.suite import PROBE, ResolvedTask, parse_teacher_ref

__all__ = ["Cell", "beta_grid", "run_cells", "teacher_subsets", "tune_cells"]

Kind = Literal["tune", "run"]


@dataclass(frozen=True)
class Cell:
    """One unit of work. ``beta`` is a number, ``"auto"``, or ``None`` (not tuned yet)."""

    task: str
    kind: Kind
    method: str
    teachers: tuple[str, ...]
    seed: int
    beta: float | str | None = None
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    fold: int | None = None

    @property
    def key(self) -> str:
        """A file-name-safe, human-readable identity of the cell."""
        teachers = "+".join(_slug(t) for t in self.teachers) or "no-teacher"
        beta = "" if self.beta is None or self.kind == "run" else f"-b{_fmt_beta(self.beta)}"
        fold = "" if self.fold is None else f"-f{self.fold}"
        return f"{self.kind}-{self.task}-{self.method}-{teachers}{beta}{fold}-s{self.seed}"

    @property
    def teacher_names(self) -> tuple[str, ...]:
        """The card names without their options."""
        return tuple(parse_teacher_ref(t)[0] for t in self.teachers)

    def digest(self) -> str:
        """Hash of everything that determines the result (identity, β and training settings)."""
        payload = asdict(self)
        options = payload["settings"].get("method_options", {})
        payload["settings"]["method_options"] = options.get(self.method, {})
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "task": self.task,
            "kind": self.kind,
            "method": self.method,
            "teachers": list(self.teachers),
            "seed": self.seed,
            "beta": self.beta,
            "fold": self.fold,
        }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "@", text).strip("@")


def _fmt_beta(beta: float | str) -> str:
    return beta if isinstance(beta, str) else f"{beta:g}"


def teacher_subsets(teachers: list[str]) -> list[tuple[str, ...]]:
    """The subsets of the leave-one-teacher-out ablation: each single teacher, each set without
    one teacher, and the full set (full set last; no duplicates; order kept)."""
    full = tuple(teachers)
    out: list[tuple[str, ...]] = []
    for size in sorted({1, len(full) - 1}):
        if size < 1 or size >= len(full):
            continue
        out += [c for c in combinations(full, size) if c not in out]
    return [*out, full]


def beta_grid(task: ResolvedTask, method: str) -> list[float] | None:
    """The β values to tune for ``method``, or None when β is fixed or 'auto'."""
    choice = task.beta_for(method)
    if isinstance(choice, list):
        return [float(b) for b in choice] if len(choice) > 1 else None
    return None


#: how a task's labelled rows and unlabelled pool are drawn (:func:`fusion_aft.data.splits.training_rows`);
#: part of every digest, so cells finished under an earlier rule run again. 2: the pool includes the
#: dataset's own unlabelled rows (1 left them out)
POOL_RULE = 2


def _settings(task: ResolvedTask) -> dict[str, Any]:
    """The task settings that change a cell's result (part of its digest)."""
    keys = (
        "dataset",
        "dataset_options",
        "labels",
        "unlabelled",
        "student",
        "student_options",
        "steps",
        "epochs",
        "batch_size",
        "lr",
        "objective_lr",
        "weight_decay",
        "use_unlabelled",
        "holdout",
        "beta_folds",
        "tune_steps_fraction",
        "data_seed",
        "probe_c",
        "device",
    )
    extra = {"method_options": task.method_options, "pool_rule": POOL_RULE}
    return {k: getattr(task, k) for k in keys} | extra


def tune_cells(task: ResolvedTask) -> list[Cell]:
    """One run per (β of each tuned method's grid, fold) (full teacher set, the tuning seed)."""
    cells = []
    settings = _settings(task)
    for method in task.methods:
        for beta in beta_grid(task, method) or []:
            teachers = tuple(task.teachers) if method != "none" else ()
            for fold in range(task.beta_folds):
                cells.append(Cell(task.name, "tune", method, teachers, task.tune_seed, beta, settings, fold))
    return cells


def run_cells(task: ResolvedTask, chosen: dict[str, float | str] | None = None) -> list[Cell]:
    """The test-split cells of a task.

    ``chosen`` maps a method to the β picked on the holdout; methods whose β is a fixed number or
    ``"auto"`` take it from the suite; tuned methods missing from ``chosen`` get ``beta=None``
    (a plan, not yet runnable). The ablation method runs on every subset of
    :func:`teacher_subsets`; the probe runs once (it is deterministic) on the same subsets.
    """
    chosen = chosen or {}
    settings = _settings(task)
    cells: list[Cell] = []
    full = tuple(task.teachers)
    for method in task.methods:
        if method == "none":
            beta: float | str | None = 0.0
            subsets: list[tuple[str, ...]] = [()]
        else:
            fixed = task.beta_for(method)
            if isinstance(fixed, list):
                beta = float(fixed[0]) if len(fixed) == 1 else chosen.get(method)
            else:
                beta = fixed
            ablate = method in (task.ablation_method, PROBE) and task.ablation_method is not None
            subsets = teacher_subsets(task.teachers) if ablate else [full]
        seeds = task.seeds[:1] if method == PROBE else task.seeds
        for teachers in subsets:
            for seed in seeds:
                cells.append(Cell(task.name, "run", method, teachers, seed, beta, settings))
    return cells
