"""fusion-aft: transfer knowledge from several frozen foundation models into one small student.

Adaptive Feature Transfer (Qiu et al., ICML 2024, arXiv 2406.07337) with a teacher plugin
registry, a memory-mapped feature bank, every baseline objective, and a trainer.

Public API (imported lazily so ``import fusion_aft`` stays fast)::

    fusion_aft.teachers.list(pattern) / .get(name) / .load(name, device=...)
    fusion_aft.datasets.list(pattern) / .load(name or path)
    fusion_aft.objectives.list(pattern) / .create(name, student_dim, teacher_dims, **options)
    fusion_aft.students.list(pattern) / .create(name, num_classes=...)
    fusion_aft.extract(teachers, dataset, split, cache_dir=...)  -> JointBank
    fusion_aft.train(...)                                        -> TrainResult
    fusion_aft.load_student(folder)
    fusion_aft.rank_teachers(dataset, teachers, ...)             -> TeacherRanking
    @fusion_aft.register_teacher(name, inputs=..., width=...)   one Python teacher
    @fusion_aft.register_teacher_kind(kind)                      an adapter kind used by cards
"""

from __future__ import annotations

import importlib
from typing import Any

from fusion_aft.errors import FusionAftError, UnknownNameError, UserInputError
from fusion_aft.registry import Registry

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "objectives": "fusion_aft.objectives",
    "teachers": "fusion_aft.teachers",
    "datasets": "fusion_aft.datasets",
    "students": "fusion_aft.students",
    "register_teacher": "fusion_aft.teachers:register_teacher",
    "register_teacher_kind": "fusion_aft.teachers:register_kind",
    "register_dataset": "fusion_aft.data:register_dataset",
    "register_student": "fusion_aft.students:register_student",
    "register_objective": "fusion_aft.objectives:register_objective",
    "extract": "fusion_aft.bank:extract",
    "JointBank": "fusion_aft.bank:JointBank",
    "train": "fusion_aft.training:train",
    "TrainConfig": "fusion_aft.training:TrainConfig",
    "load_student": "fusion_aft.students:load_student",
    "rank_teachers": "fusion_aft.ranking:rank_teachers",
}

__all__ = ["FusionAftError", "Registry", "UnknownNameError", "UserInputError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'fusion_aft' has no attribute '{name}'")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
