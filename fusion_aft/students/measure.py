"""Cost figures of a model: parameter count, size on disk, per-example CPU latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


def folder_size(folder: str | Path, exclude: tuple[str, ...] = ()) -> int:
    """Bytes of every file under ``folder`` (names in ``exclude`` skipped)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and p.name not in exclude)


def median_latency_ms(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def student_latency_ms(student, repeats: int = 20) -> float:
    """End-to-end latency of one example on CPU: prepare → collate → forward (eval mode)."""
    student = student.to("cpu").eval()
    record = student.example_record()

    def run() -> object:
        return student(student.collate([student.prepare(record)]))

    return median_latency_ms(run, repeats=repeats)


def teacher_latency_ms(teacher, inputs: str, repeats: int = 10) -> float:
    """Latency of one example through a teacher's ``encode`` (its own preprocessing included)."""
    from PIL import Image

    from fusion_aft.data.records import Record

    fields: dict[str, object] = {}
    if "image" in inputs:
        fields["image"] = Image.new("RGB", (64, 64), (127, 127, 127))
    if "text" in inputs:
        fields["text"] = "a short example sentence about a good film"
    record = Record("example", fields)
    return median_latency_ms(lambda: teacher.encode([record]), repeats=repeats, warmup=2)
