"""Run-time reporting: a rich progress bar (rate, ETA, loss), ``metrics.jsonl``, TensorBoard."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from fusion_aft.errors import UserInputError

log = logging.getLogger(__name__)


class RateColumn(ProgressColumn):
    """Steps per second."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text("– step/s" if speed is None else f"{speed:.1f} step/s", style="progress.data.speed")


def make_progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


class MetricsLog:
    """Append-only JSON lines, flushed at each write; truncatable to a step on resume."""

    def __init__(self, path: Path, fresh: bool) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            path.write_text("", encoding="utf8")

    def truncate_to(self, step: int) -> None:
        """Drop training records at or after ``step`` (written by a run that was then killed)."""
        from fusion_aft.fileio import atomic_write_text

        kept = [r for r in read_metrics(self.path) if r.get("phase") == "train" and r.get("step", 0) < step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf8") as fh:
            fh.write(json.dumps(_clean(record)) + "\n")


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in record.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        out[k] = v
    return out


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (a torn last line from a crash is skipped)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class Board:
    """TensorBoard scalars when asked for; a clear error when the package is missing."""

    def __init__(self, folder: Path | None) -> None:
        self.writer = None
        if folder is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserInputError(
                "tensorboard=true needs the tensorboard package: pip install 'fusion-aft[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(log_dir=str(folder))

    def write(self, record: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for k, v in record.items():
            if isinstance(v, int | float) and k not in ("step", "epoch"):
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
