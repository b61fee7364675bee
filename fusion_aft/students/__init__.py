"""Students: small trainable models returning ``(logits, features)``.

Built-ins: ``mlp``, ``small_cnn`` (vision, seconds on a CPU), ``text_cnn``, ``text_bow`` (text
over a WordPiece tokenizer), and the families ``timm`` (any timm model) and ``hf`` (any Hugging
Face encoder). Add your own with :func:`register_student`, or from a package through the
``fusion_aft.students`` entry-point group.

Example::

    import fusion_aft
    s = fusion_aft.students.create("small_cnn", num_classes=10)
    logits, features = s(s.collate([s.prepare(r) for r in records]))
    fusion_aft.students.save_student(s, "out/student", meta={"classes": names})
    s2 = fusion_aft.load_student("out/student")
"""

from __future__ import annotations

import builtins
from typing import Any

from fusion_aft.students import small as _small  # noqa: F401  (registers mlp, small_cnn)
from fusion_aft.students import text as _text  # noqa: F401  (registers text_cnn, text_bow)
from fusion_aft.students.base import Student, move_to
from fusion_aft.students.defaults import DEFAULT_STUDENTS, default_student
from fusion_aft.students.io import count_parameters, load_student, read_student_info, save_student
from fusion_aft.students.registry import STUDENTS, create, register_student

__all__ = [
    "DEFAULT_STUDENTS",
    "STUDENTS",
    "Student",
    "count_parameters",
    "create",
    "default_student",
    "get",
    "load_student",
    "move_to",
    "read_student_info",
    "register_student",
    "save_student",
]


def list(pattern: str | None = None) -> builtins.list[str]:  # noqa: A001 - public API name
    """Registered student names, optionally filtered by a shell wildcard."""
    return STUDENTS.names(pattern)


def get(name: str) -> Any:
    """The factory registered under ``name`` (a :class:`Student` subclass or a function)."""
    return STUDENTS.get(name)


from fusion_aft.students import hf_student as _hf  # noqa: E402,F401  (registers hf)
from fusion_aft.students import pretrained as _pretrained  # noqa: E402,F401  (text_glove, image_lite0)
from fusion_aft.students import timm_student as _timm  # noqa: E402,F401  (registers timm)
