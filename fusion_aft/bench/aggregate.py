"""Aggregation of cell results: mean ± standard error over seeds, STL-normalised error.

The paper's summary number (Qiu et al. 2024, Fig. 2/3): for each task, a method's test error
divided by the error of the student trained alone (STL), then averaged over tasks; below 1 means
the teachers helped.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Summary",
    "mean_stderr",
    "normalised_error",
    "normalised_error_by_task",
    "summarise",
]


def mean_stderr(values: Iterable[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std with n-1, over sqrt(n)); NaN error if n<2."""
    xs = [float(v) for v in values]
    if not xs:
        return math.nan, math.nan
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, math.nan
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, math.sqrt(var / len(xs))


@dataclass(frozen=True)
class Summary:
    """Accuracy over seeds of one (task, method, teacher subset)."""

    task: str
    method: str
    teachers: tuple[str, ...]
    mean: float
    stderr: float
    n: int
    beta: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "method": self.method,
            "teachers": list(self.teachers),
            "accuracy_mean": self.mean,
            "accuracy_stderr": self.stderr,
            "n_seeds": self.n,
            "beta": self.beta,
        }


def summarise(records: Iterable[Mapping[str, Any]]) -> list[Summary]:
    """Group ``run`` records by (task, method, teachers) and reduce accuracy over seeds."""
    groups: dict[tuple[str, str, tuple[str, ...]], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("kind", "run") != "run":
            continue
        groups[(r["task"], r["method"], tuple(r.get("teachers") or ()))].append(r)
    out = []
    for (task, method, teachers), rs in groups.items():
        mean, se = mean_stderr(r["accuracy"] for r in rs)
        betas = {r.get("beta") for r in rs}
        out.append(
            Summary(task, method, teachers, mean, se, len(rs), betas.pop() if len(betas) == 1 else None)
        )
    return out


def _full_set(summaries: list[Summary], task: str) -> tuple[str, ...]:
    """The largest teacher set used on ``task`` (the task's full set)."""
    sets = [s.teachers for s in summaries if s.task == task]
    return max(sets, key=len) if sets else ()


def normalised_error_by_task(summaries: list[Summary], baseline: str = "none") -> dict[str, dict[str, float]]:
    """task -> method -> (1 - mean acc) / (1 - mean acc of ``baseline``), on the full teacher set."""
    out: dict[str, dict[str, float]] = {}
    for task in sorted({s.task for s in summaries}):
        base = [s for s in summaries if s.task == task and s.method == baseline]
        if not base:
            continue
        base_err = 1.0 - base[0].mean
        full = _full_set(summaries, task)
        row = {}
        for s in summaries:
            if s.task != task or (s.method != baseline and s.teachers != full):
                continue
            row[s.method] = (1.0 - s.mean) / base_err if base_err > 0 else math.nan
        out[task] = row
    return out


def normalised_error(summaries: list[Summary], baseline: str = "none") -> dict[str, float]:
    """method -> STL-normalised error averaged over the tasks where the method ran."""
    per_task = normalised_error_by_task(summaries, baseline)
    acc: dict[str, list[float]] = defaultdict(list)
    for row in per_task.values():
        for method, value in row.items():
            acc[method].append(value)
    return {m: sum(v) / len(v) for m, v in acc.items()}
