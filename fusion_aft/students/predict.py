"""Run a saved student on raw inputs (image paths or text strings) with no teacher installed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fusion_aft.data.records import Record
from fusion_aft.errors import UserInputError
from fusion_aft.students.base import Student
from fusion_aft.students.inputs import to_pil


def input_record(student: Student, value: str, index: int = 0) -> Record:
    """Turn one command-line input into a record for the student's modality.

    Images: a file path (read now, so an unreadable file is reported before any work). Text:
    the string itself. Vectors: comma-separated numbers.
    """
    field = student.input_field
    if student.modality == "image":
        return Record(str(index), {field: to_pil(Path(value))})
    if student.modality == "text":
        return Record(str(index), {field: value})
    try:
        return Record(str(index), {field: [float(v) for v in value.split(",")]})
    except ValueError:
        raise UserInputError(f"input {value!r} is not a comma-separated list of numbers") from None


def predict(student: Student, inputs: Sequence[str], top_k: int = 3) -> list[dict[str, Any]]:
    """Label and probability (plus the ``top_k`` best) for each raw input."""
    if not inputs:
        raise UserInputError("no inputs given; pass image paths or text strings")
    records = [input_record(student, v, i) for i, v in enumerate(inputs)]
    probs = student.predict_proba(records)
    names = student.class_names or [str(i) for i in range(student.num_classes)]
    k = max(1, min(int(top_k), student.num_classes))
    out = []
    for value, row in zip(inputs, probs, strict=True):
        p, idx = row.topk(k)
        top = [{"label": names[int(i)], "index": int(i), "probability": float(q)} for q, i in zip(p, idx)]
        out.append(
            {"input": value, "label": top[0]["label"], "probability": top[0]["probability"], "top": top}
        )
    return out
