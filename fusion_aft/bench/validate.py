"""Check that every name a suite uses exists: methods, teachers, datasets, students.

Structure is checked by pydantic when the suite is read; names are checked here, against the
live registries, so a typo fails before any work with the close matches listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from fusion_aft.bench.suite import PROBE, Suite, parse_teacher_ref
from fusion_aft.data.locate import looks_like_path
from fusion_aft.errors import UserInputError
from fusion_aft.registry import close_matches

__all__ = ["NameProblem", "check_names", "validate_names"]


@dataclass(frozen=True)
class NameProblem:
    """One unknown name: where it appears, what kind it is, and close matches."""

    where: str
    kind: str
    name: str
    near: tuple[str, ...]

    def message(self) -> str:
        hint = f"; close matches: {', '.join(self.near)}" if self.near else ""
        return f"{self.where}: unknown {self.kind} '{self.name}'{hint}"


def _known(kind: str) -> list[str]:
    """Names registered for ``kind`` (an empty list when that part is not installed)."""
    import fusion_aft

    try:
        if kind == "method":
            return [*fusion_aft.objectives.list(), PROBE]
        if kind == "teacher":
            return list(fusion_aft.teachers.list())
        if kind == "dataset":
            return list(fusion_aft.datasets.list())
        if kind == "student":
            return list(fusion_aft.students.list())
    except (ImportError, AttributeError):
        return []
    raise ValueError(kind)


def check_names(suite: Suite) -> list[NameProblem]:
    """Every unknown name in ``suite`` (empty when all resolve)."""
    known = {k: _known(k) for k in ("method", "teacher", "dataset", "student")}
    problems: list[NameProblem] = []

    def check(where: str, kind: str, name: str) -> None:
        if name not in known[kind]:
            problems.append(NameProblem(where, kind, name, tuple(close_matches(name, known[kind], n=3))))

    for m in suite.defaults.methods:
        check("defaults.methods", "method", m)
    for m in suite.defaults.beta:
        check("defaults.beta", "method", m)
    for m in suite.defaults.method_options:
        check("defaults.method_options", "method", m)
    if suite.defaults.ablation_method:
        check("defaults.ablation_method", "method", suite.defaults.ablation_method)
    for task in suite.tasks:
        where = f"tasks.{task.name}"
        if not looks_like_path(task.dataset):  # a file or folder is checked when the plan loads it
            check(f"{where}.dataset", "dataset", task.dataset)
        check(f"{where}.student", "student", task.student)
        for ref in task.teachers:
            check(f"{where}.teachers", "teacher", parse_teacher_ref(ref)[0])
        for m in task.methods or []:
            check(f"{where}.methods", "method", m)
        for m in task.beta or {}:
            check(f"{where}.beta", "method", m)
    return problems


def validate_names(suite: Suite) -> None:
    """Raise :class:`UserInputError` naming the first unknown name (and how many more)."""
    problems = check_names(suite)
    if problems:
        more = f" (and {len(problems) - 1} more unknown names)" if len(problems) > 1 else ""
        raise UserInputError(f"suite '{suite.source or suite.name}': {problems[0].message()}{more}")
