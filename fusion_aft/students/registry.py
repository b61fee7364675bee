"""The student registry: names → student classes or factories ``(num_classes, **options)``."""

from __future__ import annotations

from typing import Any

from fusion_aft.errors import UserInputError
from fusion_aft.registry import Registry
from fusion_aft.students.base import Student

STUDENTS: Registry = Registry("student", entry_point_group="fusion_aft.students")

#: Decorator (or call) adding a student factory: ``@register_student("my_net")``.
register_student = STUDENTS.register

#: The student used when none is named, by the modality of the dataset's input (an image field
#: wins over a text field: image–caption rows train an image student). Both are pretrained and
#: cheap on a CPU (``fusion_aft/students/pretrained.py``).
DEFAULT_STUDENTS: dict[str, str] = {"image": "image_lite0", "text": "text_glove"}


def default_student(fields: tuple[str, ...] | list[str]) -> str:
    """The default student for a dataset with these input ``fields``."""
    for modality in ("image", "text"):
        if modality in fields:
            return DEFAULT_STUDENTS[modality]
    raise UserInputError(
        f"no default student for a dataset with fields {list(fields)}; pass --student "
        f"(registered: {', '.join(STUDENTS.names())})"
    )


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
