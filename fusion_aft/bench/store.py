"""Finished cells on disk: one JSON file per cell, written atomically.

A cell's file is written to a temporary name and renamed into place, so an interrupted run never
leaves a half-written result; rerunning skips every cell whose file exists with a matching digest.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fusion_aft.bench.cells import Cell
from fusion_aft.fileio import atomic_write_json

__all__ = ["CellStore"]

log = logging.getLogger(__name__)


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
        atomic_write_json(self.path(cell), record)
        return record
