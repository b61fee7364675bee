"""Names and labels of the benchmark report: methods, teachers, subsets, figures, percentages."""

from __future__ import annotations

import math

from fusion_aft.bench.aggregate import Summary
from fusion_aft.bench.suite import PROBE

METHOD_LABELS = {
    "none": "STL",
    "kd": "KD",
    "rkd": "RKD",
    "ft": "FT",
    "btune": "B-Tuning",
    "aft": "AFT",
    "aft_rbf": "AFT (RBF)",
    "aft_dense": "AFT (dense)",
    "aft_no_kernel": "AFT (no kernel)",
    "kkd": "Kernel KD",
    PROBE: "Linear probe",
}
METHOD_ORDER = [
    "none",
    "kd",
    "rkd",
    "ft",
    "btune",
    "kkd",
    "aft_no_kernel",
    "aft_dense",
    "aft_rbf",
    "aft",
    PROBE,
]

#: file name -> what it shows
FIGURES = {
    "normalised_error.png": "test error / STL error, averaged over tasks, per method",
    "accuracy.png": "test accuracy per task and method (mean ± standard error over seeds)",
    "ablation.png": "AFT with each teacher subset vs the linear probe on the same subset",
    "mu_share.png": "share of AFT's learned weights μ per teacher",
    "teacher_strength.png": "student accuracy against the teachers' linear-probe accuracy",
    "cost.png": "teacher extraction time and student size and latency",
}


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def order_methods(methods: list[str]) -> list[str]:
    return sorted(set(methods), key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else 99, m))


def pct(mean: float, se: float | None = None) -> str:
    if mean is None or math.isnan(mean):
        return "—"
    if se is None or math.isnan(se):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} ± {100 * se:.1f}"


def short_name(teacher: str) -> str:
    return teacher.split("?")[0]


def subset_label(teachers: tuple[str, ...] | list[str]) -> str:
    return " + ".join(short_name(t) for t in teachers) or "no teacher"


def full_sets(summaries: list[Summary]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for s in summaries:
        if len(s.teachers) > len(out.get(s.task, ())):
            out[s.task] = s.teachers
    return out
