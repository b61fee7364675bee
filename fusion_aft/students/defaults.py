"""The student a run gets when none is named: one table, by the dataset's modality.

A dataset whose records carry an image is an image task (an image+text dataset too: the
students read one field); a text-only dataset is a text task. Change a default by editing
:data:`DEFAULT_STUDENTS`; the run's log and its folder (``config.json``, ``result.json``) say
which student was chosen and why.
"""

from __future__ import annotations

from collections.abc import Sequence

from fusion_aft.errors import UserInputError

#: modality -> the student a run without ``student=`` trains: pretrained and cheap on a CPU
#: (``fusion_aft/students/pretrained.py``); the from-scratch ``mlp`` and ``text_bow`` stay for comparison
DEFAULT_STUDENTS: dict[str, str] = {"image": "image_lite0", "text": "text_glove"}


def modality_of(fields: Sequence[str]) -> str:
    """``image`` when the records carry an image, else ``text`` when they carry text."""
    for modality in ("image", "text"):
        if modality in fields:
            return modality
    raise UserInputError(
        f"no default student for records with fields {list(fields)}; pass --student NAME"
    )


def default_student(fields: Sequence[str]) -> tuple[str, str]:
    """``(student name, modality)`` for a dataset whose records carry ``fields``."""
    modality = modality_of(fields)
    return DEFAULT_STUDENTS[modality], modality
