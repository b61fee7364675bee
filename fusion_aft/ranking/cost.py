"""What a teacher's bank cost: extraction seconds (per 1000 rows) and bytes on disk.

The seconds come from the best figure a bank holds, in this order:

* ``manifest``: the manifest's ``extract_seconds`` (the summed time of the runs that wrote its
  chunks), in banks written since the format records it;
* ``measured``: the wall time this process spent building it (teacher loading included), for an
  older bank it just extracted;
* ``bank age``: last update minus creation of the manifest, an upper bound that also counts any
  pause between an interrupted extraction and its resume.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BankCost", "bank_cost", "folder_bytes"]


@dataclass
class BankCost:
    """Extraction seconds, rows, bytes and where the seconds come from."""

    seconds: float | None
    rows: int
    bytes: int
    source: str

    @property
    def seconds_per_1k_rows(self) -> float | None:
        return 1000.0 * self.seconds / self.rows if self.seconds is not None and self.rows else None


def folder_bytes(folder: str | Path) -> int:
    """Total size of the files in ``folder`` (0 when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _age_seconds(manifest: Any) -> float | None:
    try:
        created = _dt.datetime.fromisoformat(manifest.created)
        updated = _dt.datetime.fromisoformat(manifest.updated)
    except (AttributeError, TypeError, ValueError):
        return None
    return max((updated - created).total_seconds(), 0.0)


def bank_cost(folder: str | Path, manifest: Any, measured: float | None = None) -> BankCost:
    """The cost of the bank in ``folder`` (``manifest`` is its :class:`BankManifest`)."""
    rows = int(manifest.shape[0])
    size = folder_bytes(folder)
    recorded = getattr(manifest, "extract_seconds", None)
    if recorded:
        return BankCost(float(recorded), rows, size, "manifest")
    if measured is not None:
        return BankCost(float(measured), rows, size, "measured")
    age = _age_seconds(manifest)
    return BankCost(age, rows, size, "bank age" if age is not None else "unknown")
