"""The student registry: names → student classes or factories ``(num_classes, **options)``."""

from __future__ import annotations

from typing import Any

from fusion_aft.errors import UserInputError
from fusion_aft.registry import Registry
from fusion_aft.students.base import Student

#: students are few: an unknown name lists every registered one, close matches first
STUDENTS: Registry = Registry("student", entry_point_group="fusion_aft.students", list_all=True)

#: Decorator (or call) adding a student factory: ``@register_student("my_net")``.
register_student = STUDENTS.register


def create(name: str, num_classes: int, **options: Any) -> Student:
    """Build student ``name`` with ``num_classes`` outputs; ``options`` go to its factory.

    Unknown options are a :class:`UserInputError` naming the student, never silently ignored.
    """
    factory = STUDENTS.get(name)
    try:
        student = factory(num_classes=int(num_classes), **options)
    except TypeError as exc:
        if "unexpected keyword" in str(exc) or "positional argument" in str(exc):
            raise UserInputError(
                f"student '{name}': {exc}; see help(fusion_aft.students.get('{name}'))"
            ) from None
        raise
    if not isinstance(student, Student):
        raise TypeError(f"student factory '{name}' returned {type(student).__name__}, not a Student")
    student.name = name
    return student
