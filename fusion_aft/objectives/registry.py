"""The objective registry and its factory functions.

Objectives are registered by name with :func:`register_objective`; third-party packages add
theirs through the entry-point group ``fusion_aft.objectives``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fusion_aft.errors import UserInputError
from fusion_aft.objectives.base import Objective
from fusion_aft.registry import Registry, close_matches

ObjT = TypeVar("ObjT", bound=type[Objective])

#: the one table of objectives (name → Objective subclass)
OBJECTIVES: Registry[type[Objective]] = Registry("objective", entry_point_group="fusion_aft.objectives")


def register_objective(name: str | ObjT | None = None, *, replace: bool = False) -> Any:
    """Register an :class:`Objective` subclass under ``name`` (decorator).

    Usable as ``@register_objective("my_kd")`` or bare ``@register_objective`` (the class's
    ``name`` attribute, if it defines one, else its ``__name__``). A duplicate name raises
    ``DuplicateNameError``.

    Example::

        @register_objective("cosine_kd")
        class CosineKD(Objective):
            def compute(self, student, teacher): ...
    """
    if isinstance(name, type):
        return register_objective(None, replace=replace)(name)

    def add(cls: ObjT) -> ObjT:
        if not (isinstance(cls, type) and issubclass(cls, Objective)):
            raise TypeError(f"register_objective expects an Objective subclass, got {cls!r}")
        key = name or cls.__dict__.get("name") or cls.__name__
        OBJECTIVES.register(key, cls, replace=replace)
        if cls.__dict__.get("name") != key:
            cls.name = key
        return cls

    return add


def list_objectives(pattern: str | None = None) -> list[str]:
    """All registered objective names, sorted (optionally filtered by a wildcard)."""
    return OBJECTIVES.names(pattern)


def get(name: str) -> type[Objective]:
    """The objective class registered as ``name`` (``UnknownNameError`` lists close matches)."""
    return OBJECTIVES.get(name)


def option_names(cls: type) -> list[str]:
    """Keyword options accepted by ``cls(student_dim, teacher_dims, **options)``."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[3:]
        names += [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                  and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def create(name: str, student_dim: int, teacher_dims: Mapping[str, int] | None = None,
           **options: Any) -> Objective:
    """Build the objective ``name`` for a student of width ``student_dim`` and the teachers'
    ordered widths ``teacher_dims`` (name → width). Unknown options are a ``UserInputError``.

    Example::

        obj = create("aft", 384, {"all-minilm-l6-v2": 384, "glove-6b-50d": 50})
        loss, metrics = obj(student_features, teacher_features)
    """
    cls = get(name)
    known = option_names(cls)
    for key in options:
        if key not in known:
            near = close_matches(key, known)
            hint = f"close matches: {', '.join(near)}" if near else f"options: {', '.join(known) or 'none'}"
            raise UserInputError(f"objective '{name}' has no option '{key}'; {hint}")
    return cls(student_dim, dict(teacher_dims or {}), **options)


def from_config(config: Mapping[str, Any]) -> Objective:
    """Rebuild an objective from :meth:`Objective.config` (load its weights with ``load_state_dict``)."""
    try:
        name, student_dim = config["name"], config["student_dim"]
    except KeyError as exc:
        raise UserInputError(f"objective config lacks the key {exc}; it needs name, student_dim, "
                             "teacher_dims and options") from None
    return create(name, student_dim, config.get("teacher_dims") or {}, **dict(config.get("options") or {}))


Factory = Callable[..., Objective]
