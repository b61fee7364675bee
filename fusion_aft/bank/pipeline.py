"""The extraction pipeline shared by single-process and multi-process extraction.

Arguments resolved (dataset, split, teachers, dtype), records read through a DataLoader and
prepared by ``teacher.prepare``/``teacher.collate`` (in workers, or in a thread on a spare core),
the forward pass, the cast to the bank's dtype with its finiteness check, and the progress bar.
It writes nothing: :mod:`fusion_aft.bank.writer` owns the bank's files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from fusion_aft.bank.manifest import TeacherInfo
from fusion_aft.bank.store import DTYPES
from fusion_aft.errors import UserInputError
from fusion_aft.machine import usable_cores

__all__ = [
    "TARGET_CHUNK_ROWS",
    "Collate",
    "Failed",
    "NonFiniteFeaturesError",
    "PreparedRows",
    "Progress",
    "ahead",
    "auto_workers",
    "cast_checked",
    "check_modality",
    "default_chunk_rows",
    "forward",
    "make_loader",
    "measured_workers",
    "bank_dtype",
    "resolve_data",
    "resolve_teachers",
    "spare_core",
    "teacher_info",
    "teacher_ref",
]

TARGET_CHUNK_ROWS = 1024


class NonFiniteFeaturesError(UserInputError):
    """A teacher produced NaN or Inf features (or values too large for float16)."""


# -- resolving arguments ---------------------------------------------------------------------------
def resolve_data(dataset: Any, split: Any, dataset_options: dict[str, Any] | None) -> tuple[str, Any]:
    from fusion_aft.data import Dataset, load
    from fusion_aft.data.records import Split

    if isinstance(split, Split):  # the dataset only names the bank folder
        name = dataset.name if isinstance(dataset, Dataset) else str(dataset or "custom")
        return name, split
    if isinstance(dataset, str):
        dataset = load(dataset, **(dataset_options or {}))
    elif dataset_options:
        raise UserInputError("dataset_options apply only when the dataset is given by name")
    if not isinstance(dataset, Dataset):
        raise UserInputError(f"dataset must be a name or a Dataset, got {type(dataset).__name__}")
    return dataset.name, dataset.split(split)


def resolve_teachers(teachers: Any, device: Any) -> list[Any]:
    if isinstance(teachers, str):
        teachers = [t.strip() for t in teachers.split(",") if t.strip()]
    elif not isinstance(teachers, list | tuple):
        teachers = [teachers]
    if not teachers:
        raise UserInputError("no teachers given; pass at least one teacher name")
    out = []
    for t in teachers:
        if isinstance(t, str):
            from fusion_aft import teachers as registry

            t = registry.load(t, device=device)
        out.append(t)
    return out


def bank_dtype(dtype: str) -> str:
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise UserInputError(f"unknown bank dtype '{dtype}'; use fp16 or fp32") from None


def teacher_ref(teacher: Any) -> str:
    spec = teacher.spec
    return str(getattr(spec, "ref", None) or spec.name)


def teacher_info(teacher: Any) -> TeacherInfo:
    spec = teacher.spec
    if hasattr(spec, "content"):
        card = spec.content()
    elif hasattr(spec, "model_dump"):
        card = spec.model_dump(mode="json")
    else:
        card = {"name": spec.name}
    pre = getattr(spec, "preprocessing", None)
    if hasattr(pre, "model_dump"):
        pre = pre.model_dump(mode="json")
    return TeacherInfo(
        name=str(spec.name),
        ref=teacher_ref(teacher),
        fingerprint=str(spec.fingerprint()),
        weights_digest=str(teacher.weights_digest()),
        width=int(spec.width),
        inputs=str(getattr(spec, "inputs", "")),
        card=card,
        preprocessing=pre if isinstance(pre, dict) else None,
    )


def check_modality(teacher: Any, split: Any, dataset_name: str) -> None:
    inputs = str(getattr(teacher.spec, "inputs", ""))
    need = {"image": {"image"}, "text": {"text"}, "image+text": {"image", "text"}}.get(inputs, set())
    have = set(split[0].fields) if len(split) else set()
    missing = need - have
    if missing:
        raise UserInputError(
            f"teacher '{teacher_ref(teacher)}' reads {inputs} but records of dataset '{dataset_name}' "
            f"split '{split.name}' have only {sorted(have)}; pick a teacher for {'/'.join(sorted(have))}"
        )


def auto_workers(rows: int, batch_size: int) -> int:
    """DataLoader workers for ``teacher.prepare``: none for tiny jobs, else up to 4 spare cores."""
    cores = usable_cores()
    if rows <= 2 * batch_size or cores < 2:
        return 0
    return min(4, cores - 1)


def measured_workers(split: Any, teacher: Any, start: int, batch_size: int, cores_workers: int) -> int:
    """Workers worth starting for ``teacher.prepare``.

    A worker only pays off when preparing inputs is a real share of the work (at least a tenth
    of the forward): receiving each batch from another process costs time too, and a forked
    worker makes the parent pay copy-on-write faults while it runs. For EfficientNet-Lite0 at
    64 px (prepare ≈ 7 % of the forward) one worker on a spare core gave 0.93 of the bare
    forward's rate and none 0.98; for MiniLM 0.98 and 1.00. Both costs are timed on a few rows
    (they grow with the row count alike), in the main process. Workers go to the cores torch's
    own threads leave idle, or, when torch uses every core, share them with it. Without workers
    a thread prepares the batches ahead when a core is idle (:func:`ahead`).
    """
    import torch

    if cores_workers == 0:
        return 0
    stop = min(len(split), start + min(batch_size, 8))
    t0 = time.perf_counter()
    batch = Collate(teacher)([PreparedRows(split, teacher, 0)[i] for i in range(start, stop)])
    t1 = time.perf_counter()
    if isinstance(batch, Failed):
        return cores_workers  # the loader reports the failure with its record id
    forward(teacher, batch)
    t2 = time.perf_counter()
    if (t1 - t0) < 0.1 * (t2 - t1):
        return 0
    idle = usable_cores() - torch.get_num_threads()
    return min(cores_workers, idle) if idle >= 1 else cores_workers


def default_chunk_rows(batch_size: int) -> int:
    return batch_size * max(1, math.ceil(TARGET_CHUNK_ROWS / batch_size))


def cast_checked(
    values: np.ndarray, dtype: Any, ref: str, ids: Sequence[str], offset: int, kept: str
) -> np.ndarray:
    """``values`` (rows ``offset..`` of ``ids``) cast to the bank's dtype; a row that is not
    finite after the cast raises :class:`NonFiniteFeaturesError` naming its record and why
    (NaN/Inf from the teacher, or a value beyond float16's range). ``kept`` ends the message."""
    with np.errstate(over="ignore"):
        stored = values.astype(dtype)
    bad = ~np.isfinite(stored).all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        overflow = bool(np.isfinite(values[k]).all())
        why = "values beyond float16 range; use dtype fp32" if overflow else "NaN/Inf features"
        row = offset + k
        raise NonFiniteFeaturesError(
            f"teacher '{ref}' produced {why} for record '{ids[row]}' (row {row}){kept}"
        )
    return stored


# -- the DataLoader side ---------------------------------------------------------------------------
class Failed:
    """A record that could not be prepared; carried to the main process instead of a traceback."""

    def __init__(self, message: str) -> None:
        self.message = message


class PreparedRows:
    """``torch`` map-style dataset: rows ``start..`` of ``split`` through ``teacher.prepare``."""

    def __init__(self, split: Any, teacher: Any, start: int) -> None:
        self.split = split
        self.teacher = teacher
        self.start = start

    def __len__(self) -> int:
        return len(self.split) - self.start

    def __getitem__(self, i: int) -> Any:
        index = self.start + i
        try:
            return self.teacher.prepare(self.split[index])
        except UserInputError as exc:
            return Failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - reported with the record id
            return Failed(
                f"teacher '{teacher_ref(self.teacher)}' cannot prepare record '{self.split.ids[index]}': "
                f"{type(exc).__name__}: {exc}"
            )


class Collate:
    def __init__(self, teacher: Any) -> None:
        self.teacher = teacher

    def __call__(self, items: list[Any]) -> Any:
        for item in items:
            if isinstance(item, Failed):
                return item
        return self.teacher.collate(items)


def make_loader(split: Any, teacher: Any, start: int, batch_size: int, num_workers: int) -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(
        PreparedRows(split, teacher, start),
        batch_size=batch_size,
        shuffle=False,
        collate_fn=Collate(teacher),
        num_workers=num_workers,
        prefetch_factor=4 if num_workers else None,
    )


def spare_core() -> bool:
    """Whether a core is left over by torch's own threads (for preparing batches ahead)."""
    import torch

    return usable_cores() > torch.get_num_threads()


def ahead(loader: Any) -> Any:
    """``loader`` read by a background thread, two batches ahead of the forward.

    Without workers the records would be read, prepared and collated between two forward
    passes; on a spare core a thread does that while the forward runs (its kernels release the
    GIL), at no cost of sending batches between processes. Same batches, same order.
    """
    from fusion_aft.prefetch import Prefetcher

    return Prefetcher(loader, depth=2)


def forward(teacher: Any, batch: Any) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = teacher.forward_batch(batch)
    return out.detach().to("cpu", torch.float32).numpy()


# -- progress --------------------------------------------------------------------------------------
class Progress:
    """A rich progress bar (rows, rows/s, ETA) on stderr, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} rows/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def task(self, description: str, total: int, completed: int) -> Any:
        if self._progress is None:
            return None
        return self._progress.add_task(description, total=total, completed=completed, rate="-")

    def advance(self, task: Any, rows: int) -> None:
        if self._progress is None or task is None:
            return
        self._progress.advance(task, rows)
        speed = self._progress.tasks[task].speed if task < len(self._progress.tasks) else None
        self._progress.update(task, rate=f"{speed:,.0f}" if speed else "-")
