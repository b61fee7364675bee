"""Saving and loading a student: ``student.safetensors`` + ``student.json`` (+ tokenizer files).

The JSON holds the registry name and the config that rebuilds the architecture offline; the
weights are loaded from safetensors only (never unpickled). A saved folder needs neither the
teachers nor the network.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from fusion_aft.errors import UserInputError
from fusion_aft.fileio import atomic_write_json
from fusion_aft.students.base import Student
from fusion_aft.students.registry import STUDENTS, create

log = logging.getLogger(__name__)

WEIGHTS_FILE = "student.safetensors"
CONFIG_FILE = "student.json"
FORMAT = "fusion-aft-student"
FORMAT_VERSION = 1


def registry_name(student: Student) -> str:
    """The name ``student`` is registered under (its ``name``, or found by its class)."""
    if getattr(student, "name", ""):
        return student.name
    for name, entry in STUDENTS.items():
        if entry is type(student):
            return name
    raise UserInputError(
        f"student class {type(student).__name__} is not registered; register it with "
        "@fusion_aft.register_student('name') so it can be saved and loaded"
    )


def count_parameters(module: torch.nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def save_student(student: Student, folder: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``student`` into ``folder`` so :func:`load_student` rebuilds it exactly.

    Args:
        student: the student to save (any device; weights are written as stored).
        folder: created if missing; existing student files in it are overwritten.
        meta: extra JSON-able facts to keep (e.g. the dataset, teachers, accuracy). Its
            ``"classes"`` entry (class names), if present, is stored as the student's classes.

    Returns:
        The folder.
    """
    from safetensors.torch import save_model

    from fusion_aft import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = registry_name(student)
    meta = dict(meta or {})
    classes = meta.pop("classes", None) or student.class_names
    if classes is not None and len(classes) != student.num_classes:
        raise UserInputError(
            f"{len(classes)} class names given for a student with {student.num_classes} classes; "
            "pass one name per class"
        )
    files = student.save_files(folder)
    config = student.rebuild_config()
    config.update(files)
    save_model(student, str(folder / WEIGHTS_FILE), metadata={"format": "pt", "student": name})
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "config": config,
        "files": files,
        "num_classes": int(student.num_classes),
        "feature_dim": int(student.feature_dim),
        "modality": student.modality,
        "input_field": student.input_field,
        "classes": list(classes) if classes is not None else None,
        "params": count_parameters(student),
        "fusion_aft_version": __version__,
        "torch_version": torch.__version__,
        "meta": meta,
    }
    atomic_write_json(folder / CONFIG_FILE, info)
    log.info("saved student '%s' to %s", name, folder)
    return folder


def read_student_info(folder: str | Path) -> dict[str, Any]:
    """The parsed ``student.json`` of a saved student, or a one-line :class:`UserInputError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(
            f"student folder '{folder}' does not exist; pass a folder written by save_student/export"
        )
    path = folder / CONFIG_FILE
    if not path.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise UserInputError(
            f"'{folder}' is not a saved student (needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
            "pass a folder written by save_student or `fusion-aft export`"
        )
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserInputError(
            f"cannot read '{path}' ({exc}); the saved student is damaged, export it again"
        ) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or "name" not in info:
        raise UserInputError(f"'{path}' is not a fusion-aft student description; export the student again")
    if int(info.get("format_version", 0)) > FORMAT_VERSION:
        raise UserInputError(
            f"'{path}' was written by a newer fusion-aft ({info.get('fusion_aft_version')}); "
            "upgrade fusion-aft"
        )
    return info


def load_student(folder: str | Path, device: str | torch.device = "cpu") -> Student:
    """Rebuild a student saved by :func:`save_student` (eval mode, on ``device``).

    The architecture comes from the registry name and config in ``student.json``; the weights
    from ``student.safetensors`` (strict: every tensor must match). ``class_names`` and ``meta``
    are set from the JSON.
    """
    from safetensors.torch import load_model

    folder = Path(folder)
    info = read_student_info(folder)
    config = dict(info.get("config") or {})
    for key, rel in (info.get("files") or {}).items():
        target = (folder / str(rel)).resolve()
        if Path(str(rel)).is_absolute() or not target.is_relative_to(folder.resolve()):
            raise UserInputError(
                f"'{folder / CONFIG_FILE}' names file '{rel}' outside the student folder; "
                "a saved student only refers to its own files: export it again"
            )
        config[key] = str(folder / rel)
    num_classes = config.pop("num_classes", info.get("num_classes"))
    student = create(info["name"], num_classes, **config)
    try:
        missing, unexpected = load_model(student, str(folder / WEIGHTS_FILE), strict=True, device="cpu")
    except Exception as exc:
        raise UserInputError(
            f"weights in '{folder / WEIGHTS_FILE}' do not fit student '{info['name']}' "
            f"({str(exc).splitlines()[0][:200]}); export the student again"
        ) from None
    student.class_names = info.get("classes")
    student.meta = info.get("meta") or {}
    return student.to(device).eval()
