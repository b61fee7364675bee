"""A dataset given as a path: ``my.csv``, ``my.jsonl`` or a folder of class sub-folders.

``--dataset reviews.csv`` is ``--dataset csv --dataset-option path=reviews.csv``: the file's
suffix (or being a folder) picks the source, and the path becomes its ``path`` option. A
registered name always wins over a file of the same name in the working folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fusion_aft.errors import UserInputError

#: file suffix -> the source that reads it
SUFFIX_SOURCES = {".csv": "csv", ".jsonl": "jsonl"}
FOLDER_SOURCE = "image_folder"


def looks_like_path(name: str) -> bool:
    """Whether ``name`` names a file or folder rather than a registered dataset."""
    path = Path(name).expanduser()
    return path.suffix.lower() in SUFFIX_SOURCES or os.sep in name or "/" in name or path.is_dir()


def resolve_source(name: str, options: dict[str, Any], registered: bool) -> tuple[str, dict[str, Any]]:
    """``(source name, options)`` for ``name``: itself when ``registered``, else the source of a path."""
    if registered or not looks_like_path(name):
        return name, options
    path = Path(name).expanduser()
    if "path" in options:
        raise UserInputError(
            f"--dataset {name} is already a path; drop --dataset-option path=..., or give a dataset name"
        )
    source = SUFFIX_SOURCES.get(path.suffix.lower())
    if source is None:
        if not path.exists():
            raise UserInputError(
                f"--dataset {name}: no such file or folder, and not a dataset name "
                "(fusion-aft datasets list)"
            )
        if not path.is_dir():
            raise UserInputError(
                f"--dataset {name}: a path must be a .csv file, a .jsonl file or a folder with one "
                "sub-folder per class"
            )
        source = FOLDER_SOURCE
    return source, {**options, "path": str(path)}


def short_name(name: str) -> str:
    """A name fit for a run folder: the file or folder name of a path, the name itself otherwise."""
    if not looks_like_path(name):
        return name
    path = Path(name).expanduser()
    return (path.stem if path.suffix.lower() in SUFFIX_SOURCES else path.name) or "dataset"
