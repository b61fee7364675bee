"""Finished cells on disk: one JSON file per cell, written atomically.

A cell's file is written to a temporary name and renamed into place, so an interrupted run never
leaves a half-written result; rerunning skips every cell whose file exists with a matching digest.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from fusion_aft.bench.cells import Cell

__all__ = ["CellStore", "write_json_atomic"]

log = logging.getLogger(__name__)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf8") as fh:
            json.dump(obj, fh, indent=2, default=str, allow_nan=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CellStore:
    """The ``cells/`` folder of a benchmark output directory."""

    def __init__(self, out_dir: Path) -> None:
        self.folder = Path(out_dir) / "cells"

    def path(self, cell: Cell) -> Path:
        return self.folder / f"{cell.key}.json"

    def get(self, cell: Cell) -> dict[str, Any] | None:
        """The stored result of ``cell``, or None if absent, unreadable or from other settings."""
        path = self.path(cell)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("ignoring unreadable cell result %s: %s", path, exc)
            return None
        if data.get("digest") != cell.digest():
            log.info("cell %s was run with other settings; it will run again", cell.key)
            return None
        return data

    def put(self, cell: Cell, result: dict[str, Any]) -> dict[str, Any]:
        """Store ``result`` (augmented with the cell's identity and digest) and return it."""
        record = {**cell.describe(), **result, "digest": cell.digest()}
        write_json_atomic(self.path(cell), record)
        return record
