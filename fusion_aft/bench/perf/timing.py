"""Timing helpers: both arms interleaved in one process, medians, milliseconds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def interleaved(
    arms: dict[str, Callable[[], Any]], reps: int, inner: int = 1, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each arm: ``reps`` rounds, arms alternating order (A B, B A, ...)."""
    names = list(arms)
    for name in names:
        for _ in range(warmup):
            arms[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            for _ in range(inner):
                arms[name]()
            times[name].append((time.perf_counter() - t0) / inner)
    return times


def med(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def ms(seconds: float) -> float:
    return round(seconds * 1e3, 4)


def bank_bytes(rows: int, width: int, itemsize: int = 2) -> int:
    return rows * width * itemsize + rows * (len(str(rows)) + 8)
