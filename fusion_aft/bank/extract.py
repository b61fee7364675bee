"""Feature extraction into banks: chunked, resumable, locked, with progress.

For each teacher, rows are read in order through a DataLoader and prepared with
``teacher.prepare`` and ``teacher.collate`` ahead of the forward pass (so the forward is the
bottleneck): in worker processes when preparing is a real share of the work, else in a
background thread on a core that torch leaves idle; ``teacher.forward_batch`` runs in this
process on ``device``. Every ``chunk_rows`` rows (a multiple of the batch size) the chunk is
written into the memory-mapped feature file, flushed, its sha256 recorded, and the manifest
replaced atomically. A run killed at any moment resumes from the last finished chunk; because
a resumed run starts on a chunk boundary it forms exactly the same batches, so the bank is
byte-identical to an uninterrupted one.

Concurrency: one ``filelock`` per bank folder. A second writer for the same bank waits for the
first to finish (logging that it waits) and then reuses the finished bank; pass
``lock_timeout=SECONDS`` to get a :class:`BankLockedError` instead of waiting longer.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from fusion_aft.bank.joint import JointBank
from fusion_aft.bank.manifest import (
    BankManifest,
    CorruptBankError,
    DatasetInfo,
    FeatureStats,
    TeacherInfo,
    library_versions,
    now,
    read_manifest,
    write_manifest,
)
from fusion_aft.bank.store import (
    DIGESTS,
    DTYPES,
    FEATURES,
    IDS,
    LOCK,
    TeacherBank,
    bank_folder,
    chunk_sha256,
)
from fusion_aft.errors import UserInputError
from fusion_aft.fileio import atomic_write_bytes, file_sha256
from fusion_aft.machine import usable_cores

__all__ = ["BankLockedError", "NonFiniteFeaturesError", "PlanEntry", "extract", "plan"]

log = logging.getLogger(__name__)

TARGET_CHUNK_ROWS = 1024


class BankLockedError(UserInputError):
    """Another process is writing the same bank and ``lock_timeout`` ran out."""


class NonFiniteFeaturesError(UserInputError):
    """A teacher produced NaN or Inf features (or values too large for float16)."""


# -- resolving arguments ---------------------------------------------------------------------------
def _resolve_data(dataset: Any, split: Any, dataset_options: dict[str, Any] | None) -> tuple[str, Any]:
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


def _resolve_teachers(teachers: Any, device: Any) -> list[Any]:
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


def _np_dtype(dtype: str) -> str:
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise UserInputError(f"unknown bank dtype '{dtype}'; use fp16 or fp32") from None


def _teacher_ref(teacher: Any) -> str:
    spec = teacher.spec
    return str(getattr(spec, "ref", None) or spec.name)


def _teacher_info(teacher: Any) -> TeacherInfo:
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
        ref=_teacher_ref(teacher),
        fingerprint=str(spec.fingerprint()),
        weights_digest=str(teacher.weights_digest()),
        width=int(spec.width),
        inputs=str(getattr(spec, "inputs", "")),
        card=card,
        preprocessing=pre if isinstance(pre, dict) else None,
    )


def _check_modality(teacher: Any, split: Any, dataset_name: str) -> None:
    inputs = str(getattr(teacher.spec, "inputs", ""))
    need = {"image": {"image"}, "text": {"text"}, "image+text": {"image", "text"}}.get(inputs, set())
    have = set(split[0].fields) if len(split) else set()
    missing = need - have
    if missing:
        raise UserInputError(
            f"teacher '{_teacher_ref(teacher)}' reads {inputs} but records of dataset '{dataset_name}' "
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
    a thread prepares the batches ahead when a core is idle (:func:`_ahead`).
    """
    import torch

    if cores_workers == 0:
        return 0
    stop = min(len(split), start + min(batch_size, 8))
    t0 = time.perf_counter()
    batch = _Collate(teacher)([_PreparedRows(split, teacher, 0)[i] for i in range(start, stop)])
    t1 = time.perf_counter()
    if isinstance(batch, _Failed):
        return cores_workers  # the loader reports the failure with its record id
    _forward(teacher, batch)
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
class _Failed:
    """A record that could not be prepared; carried to the main process instead of a traceback."""

    def __init__(self, message: str) -> None:
        self.message = message


class _PreparedRows:
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
            return _Failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - reported with the record id
            return _Failed(
                f"teacher '{_teacher_ref(self.teacher)}' cannot prepare record '{self.split.ids[index]}': "
                f"{type(exc).__name__}: {exc}"
            )


class _Collate:
    def __init__(self, teacher: Any) -> None:
        self.teacher = teacher

    def __call__(self, items: list[Any]) -> Any:
        for item in items:
            if isinstance(item, _Failed):
                return item
        return self.teacher.collate(items)


def _loader(split: Any, teacher: Any, start: int, batch_size: int, num_workers: int) -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(
        _PreparedRows(split, teacher, start),
        batch_size=batch_size,
        shuffle=False,
        collate_fn=_Collate(teacher),
        num_workers=num_workers,
        prefetch_factor=4 if num_workers else None,
    )


def _spare_core() -> bool:
    """Whether a core is left over by torch's own threads (for preparing batches ahead)."""
    import torch

    return usable_cores() > torch.get_num_threads()


def _ahead(loader: Any) -> Any:
    """``loader`` read by a background thread, two batches ahead of the forward.

    Without workers the records would be read, prepared and collated between two forward
    passes; on a spare core a thread does that while the forward runs (its kernels release the
    GIL), at no cost of sending batches between processes. Same batches, same order.
    """
    from fusion_aft.prefetch import Prefetcher

    return Prefetcher(loader, depth=2)


def _forward(teacher: Any, batch: Any) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = teacher.forward_batch(batch)
    return out.detach().to("cpu", torch.float32).numpy()


# -- progress --------------------------------------------------------------------------------------
class _Progress:
    """A rich progress bar (rows, rows/s, ETA) on stderr, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None

    def __enter__(self) -> _Progress:
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


# -- one teacher bank ------------------------------------------------------------------------------
def _create(
    folder: Path,
    info: TeacherInfo,
    dataset: DatasetInfo,
    split: Any,
    dtype: str,
    batch_size: int,
    chunk_rows: int,
    device: str,
) -> BankManifest:
    import io

    from fusion_aft.bank.index import encode_ids
    from fusion_aft.data.fingerprint import record_digests

    def npy_bytes(array: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        return buf.getvalue()

    folder.mkdir(parents=True, exist_ok=True)
    for stale in (FEATURES, IDS, DIGESTS):
        (folder / stale).unlink(missing_ok=True)
    atomic_write_bytes(folder / IDS, npy_bytes(encode_ids(split.ids)))
    atomic_write_bytes(folder / DIGESTS, npy_bytes(np.asarray(record_digests(split), dtype="<u8")))
    features = np.lib.format.open_memmap(
        folder / FEATURES, mode="w+", dtype=dtype, shape=(len(split), info.width)
    )
    del features
    _reserve(folder / FEATURES)
    stamp = now()
    manifest = BankManifest(
        teacher=info,
        dataset=dataset,
        dtype=dtype,  # type: ignore[arg-type]
        shape=(len(split), info.width),
        batch_size=batch_size,
        chunk_rows=chunk_rows,
        rows_done=0,
        ids_sha256=file_sha256(folder / IDS),
        digests_sha256=file_sha256(folder / DIGESTS),
        device=str(device),
        versions=library_versions(),
        created=stamp,
        updated=stamp,
    )
    write_manifest(folder, manifest)
    return manifest


def _reserve(path: Path) -> None:
    """Allocate the feature file's blocks now, so a full disk is a clear error here rather than a
    SIGBUS when a memory-mapped chunk is written later (the file's bytes do not change)."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise
            log.debug("cannot reserve space for %s (%s); writes will allocate it", path, exc)


def _resume_point(folder: Path, manifest: BankManifest) -> BankManifest:
    """Drop finished chunks whose bytes no longer match their checksum (they are redone)."""
    bank = TeacherBank(folder, manifest)
    problems = bank._file_problems()  # noqa: SLF001
    if problems:
        raise CorruptBankError(f"bank {folder}: {problems[0]}")
    feats = bank.features
    good = 0
    for chunk in manifest.chunks:
        if chunk_sha256(feats[chunk.start : chunk.stop]) != chunk.sha256:
            log.warning(
                "bank %s: rows %d..%d fail their checksum; extracting them again",
                folder,
                chunk.start,
                chunk.stop,
            )
            break
        good += 1
    bank.close()
    if good < len(manifest.chunks):
        manifest.chunks = manifest.chunks[:good]
        manifest.rows_done = manifest.chunks[-1].stop if good else 0
        manifest.complete = False
        manifest.stats = None
        write_manifest(folder, manifest)
    return manifest


def _stats(features: np.ndarray, block: int = 65536) -> FeatureStats:
    total = np.zeros(features.shape[1], dtype=np.float64)
    squares = np.zeros(features.shape[1], dtype=np.float64)
    for start in range(0, features.shape[0], block):
        part = np.asarray(features[start : start + block], dtype=np.float64)
        total += part.sum(0)
        squares += np.square(part).sum(0)
    n = features.shape[0]
    mean = total / n
    var = np.maximum(squares / n - mean**2, 0.0)
    return FeatureStats(mean=[float(v) for v in mean], std=[float(v) for v in np.sqrt(var)])


class _ChunkWriter:
    """Stores the features of finished batches in a background thread, in order.

    For each batch: the cast to the bank's dtype and the finiteness check; for each chunk: the
    write into the memory-mapped file, its flush, its sha256 and the manifest update. All of it
    used to run between two forward passes; here it overlaps the next forward (numpy, hashlib and
    file I/O release the GIL). The steps and their order are unchanged, so the bank is byte-for-byte
    the same and a chunk is recorded in the manifest only after its rows are flushed: a run killed
    at any moment resumes from the last recorded chunk. The first error (a non-finite feature, a
    full disk) stops the writer; :meth:`check` and :meth:`close` raise it in the caller's thread.
    """

    def __init__(
        self, folder: Path, manifest: BankManifest, split: Any, features: np.ndarray, depth: int
    ) -> None:
        import queue
        import threading

        self.folder = folder
        self.manifest = manifest
        self.split = split
        self.features = features
        self.np_dtype = np.dtype(manifest.dtype)
        self.rows = manifest.shape[0]
        self.chunk_start = self.pos = manifest.rows_done
        self.pending: list[np.ndarray] = []
        self.error: BaseException | None = None
        self._queue: Any = queue.Queue(maxsize=max(1, depth))
        self._thread = threading.Thread(target=self._work, name="fusion-aft-bank-writer", daemon=True)
        self._thread.start()

    def put(self, values: np.ndarray) -> None:
        """Queue one batch of float32 features (waits while ``depth`` batches are queued)."""
        self.check()
        self._queue.put(values)

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Store everything queued so far (unless stopped at an error) and end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def close(self) -> None:
        """:meth:`stop`, then raise the writer's error if it had one."""
        self.stop()
        self.check()

    def _work(self) -> None:
        while True:
            values = self._queue.get()
            if values is None:
                return
            if self.error is not None:
                continue  # stopped at an error: drop what is still queued
            try:
                self._store(values)
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                self.error = exc

    def _store(self, values: np.ndarray) -> None:
        m = self.manifest
        kept = _kept(self.folder, self.chunk_start)
        stored = cast_checked(values, self.np_dtype, m.teacher.ref, self.split.ids, self.pos, kept)
        self.pending.append(stored)
        self.pos += len(stored)
        if self.pos - self.chunk_start >= m.chunk_rows or self.pos == self.rows:
            block = np.concatenate(self.pending)
            self.features[self.chunk_start : self.pos] = block
            self.features.flush()
            m.chunks.append(_chunk(self.chunk_start, self.pos, block))
            m.rows_done = self.pos
            write_manifest(self.folder, m)
            self.pending, self.chunk_start = [], self.pos


def _run(
    folder: Path,
    manifest: BankManifest,
    teacher: Any,
    split: Any,
    num_workers: int | None,
    bar: _Progress,
) -> None:
    rows, width = manifest.shape
    start = manifest.rows_done
    ref = manifest.teacher.ref
    if num_workers is None:
        workers = measured_workers(
            split, teacher, start, manifest.batch_size, auto_workers(rows - start, manifest.batch_size)
        )
    else:
        workers = int(num_workers)
    task = bar.task(f"{ref} · {manifest.dataset.name}/{manifest.dataset.split}", rows, start)
    features = np.lib.format.open_memmap(folder / FEATURES, mode="r+")
    # the loader forks its workers before the writer thread starts (a fork copies no thread)
    loader = _loader(split, teacher, start, manifest.batch_size, workers)
    batches = iter(_ahead(loader) if workers == 0 and len(loader) > 1 and _spare_core() else loader)
    writer = _ChunkWriter(folder, manifest, split, features, depth=manifest.chunk_rows // manifest.batch_size)
    pos = start
    try:
        for batch in batches:
            writer.check()
            if isinstance(batch, _Failed):
                writer.close()  # finished chunks are recorded before the error names them
                raise UserInputError(f"{batch.message}{_kept(folder, writer.chunk_start)}")
            values = _forward(teacher, batch)
            if values.ndim != 2 or values.shape[1] != width:
                raise UserInputError(
                    f"teacher '{ref}' returned features of shape {list(values.shape)}; "
                    f"its card says width {width}"
                )
            writer.put(values)
            pos += len(values)
            bar.advance(task, len(values))
        writer.close()
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # stops the prefetch thread before the writer
        del batches
        writer.stop()  # an interrupted run still records the chunks it finished
        del features, writer
    if pos != rows:
        raise UserInputError(f"extraction of '{ref}' stopped at row {pos} of {rows}")


def _kept(folder: Path, rows_done: int) -> str:
    if not rows_done:
        return ""
    return f"; finished rows 0..{rows_done - 1} are kept in {folder} and the next run resumes there"


def _chunk(start: int, stop: int, block: np.ndarray) -> Any:
    from fusion_aft.bank.manifest import ChunkInfo

    return ChunkInfo(start=start, stop=stop, sha256=chunk_sha256(block))


def _finish(folder: Path, manifest: BankManifest) -> None:
    feats = np.load(folder / FEATURES, mmap_mode="r")
    manifest.stats = _stats(feats)
    del feats
    manifest.complete = True
    write_manifest(folder, manifest)


def _lock(folder: Path, timeout: float | None) -> FileLock:
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK))
    try:
        lock.acquire(timeout=0)
        return lock
    except Timeout:
        pass
    if timeout is not None and timeout <= 0:
        raise BankLockedError(
            f"bank {folder} is being written by another process (lock {folder / LOCK}); wait for it to "
            "finish, or use another --cache-dir"
        )
    log.warning("bank %s is being written by another process; waiting for it to finish", folder)
    try:
        lock.acquire(timeout=-1 if timeout is None else timeout)
    except Timeout:
        raise BankLockedError(
            f"bank {folder} is still being written by another process after {timeout:g} s "
            f"(lock {folder / LOCK}); wait for it to finish, or use another --cache-dir"
        ) from None
    return lock


def extract_one(
    teacher: Any,
    split: Any,
    dataset_name: str,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    dtype: str = "fp16",
    num_workers: int | None = None,
    progress: bool = True,
    chunk_rows: int | None = None,
    lock_timeout: float | None = None,
    device: Any = None,
) -> TeacherBank:
    """Build (or resume, or reuse) the bank of one teacher for one split; returns it opened."""
    from fusion_aft.data.fingerprint import dataset_fingerprint

    np_dtype = _np_dtype(dtype)
    if batch_size < 1:
        raise UserInputError(f"batch size must be at least 1, got {batch_size}")
    chunk_rows = int(chunk_rows or default_chunk_rows(batch_size))
    if chunk_rows % batch_size:
        raise UserInputError(f"chunk_rows ({chunk_rows}) must be a multiple of the batch size ({batch_size})")
    if len(split) == 0:
        raise UserInputError(f"split '{split.name}' of dataset '{dataset_name}' is empty; nothing to extract")
    _check_modality(teacher, split, dataset_name)
    info = _teacher_info(teacher)
    dfp = dataset_fingerprint(split)
    folder = bank_folder(cache_dir, dataset_name, split.name, dfp, info.ref, info.fingerprint, np_dtype)
    dataset = DatasetInfo(name=dataset_name, split=split.name, fingerprint=dfp, rows=len(split))
    try:
        lock = _lock(folder, lock_timeout)
    except OSError as exc:
        raise _write_error(folder, exc, 0) from None
    fresh = failed = True
    manifest = None
    try:
        for junk in folder.glob(".*.tmp"):  # temp files of a writer killed before its rename
            junk.unlink(missing_ok=True)
        if (folder / "manifest.json").exists():
            fresh = False
            manifest = read_manifest(folder)
            bank = TeacherBank(folder, manifest)
            bank.check_teacher(info.ref, info.fingerprint, info.weights_digest)
            if manifest.dataset.fingerprint != dfp:
                bank.check_split(split)
            if manifest.complete:
                opened = TeacherBank.open(folder)
                failed = False
                return opened
            if manifest.batch_size != batch_size:
                log.info(
                    "resuming %s with its batch size %d (asked: %d)", folder, manifest.batch_size, batch_size
                )
            manifest = _resume_point(folder, manifest)
            log.info("resuming %s at row %d of %d", folder, manifest.rows_done, manifest.shape[0])
        if manifest is None:
            manifest = _create(folder, info, dataset, split, np_dtype, batch_size, chunk_rows, str(device))
        with _Progress(progress) as bar:
            _run(folder, manifest, teacher, split, num_workers, bar)
        _finish(folder, manifest)
        opened = TeacherBank.open(folder)
        failed = False
        return opened
    except OSError as exc:
        raise _write_error(folder, exc, _rows_on_disk(folder)) from None
    finally:
        # a bank this call created that failed before its first chunk is removed, not left empty
        discard = failed and fresh and (manifest is None or manifest.rows_done == 0)
        if discard:
            _discard(folder)
        lock.release()
        if discard:
            _remove_empty(folder)


def _rows_on_disk(folder: Path) -> int:
    """Rows the manifest on disk says are finished (the in-memory one may be a chunk ahead)."""
    try:
        return read_manifest(folder).rows_done
    except (CorruptBankError, OSError):
        return 0


def _write_error(folder: Path, exc: OSError, rows_done: int) -> UserInputError:
    """A full disk or an unwritable cache folder, as one line that says what is kept."""
    kept = (
        f"; finished rows 0..{rows_done - 1} are kept and the same command resumes from there"
        if rows_done
        else ""
    )
    if exc.errno == errno.ENOSPC:
        return UserInputError(
            f"the disk is full: cannot write the feature bank {folder}{kept}; free some space or pass "
            "another --cache-dir, then run the same command again"
        )
    return UserInputError(
        f"cannot write the feature bank {folder} ({exc.strerror or exc}){kept}; check that the cache "
        "folder is writable or pass another --cache-dir"
    )


def _discard(folder: Path) -> None:
    """Remove the files of a bank this call created and that holds no finished row."""
    for name in (FEATURES, IDS, DIGESTS, "manifest.json"):
        try:
            (folder / name).unlink(missing_ok=True)
        except OSError:
            pass


def _remove_empty(folder: Path) -> None:
    """Remove the bank folder (and its dataset folder) once nothing but the lock is left."""
    try:
        if {p.name for p in folder.iterdir()} <= {LOCK}:
            (folder / LOCK).unlink(missing_ok=True)
            folder.rmdir()
            folder.parent.rmdir()  # only succeeds when no other teacher's bank is in it
    except OSError:
        pass


def extract(
    teachers: Any,
    dataset: Any,
    split: Any = "train",
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    device: Any = "cpu",
    dtype: str = "fp16",
    num_workers: int | None = None,
    progress: bool = True,
    dataset_options: dict[str, Any] | None = None,
    *,
    chunk_rows: int | None = None,
    lock_timeout: float | None = None,
    shared_fs: bool | None = None,
) -> JointBank:
    """Extract (or reuse) every teacher's features for one split; returns their :class:`JointBank`.

    Under ``torchrun`` every process must call it: the chunks are shared out among them
    (:mod:`fusion_aft.bank.distributed`; ``shared_fs`` picks the mode, ``None`` detects it).

    Args:
        teachers: teacher refs (``"glove-6b-50d"``, ``"a,b"``) or loaded ``Teacher`` objects.
        dataset: a dataset name (loaded with ``dataset_options``) or a ``Dataset``.
        split: a split name of ``dataset`` or a ``Split`` (e.g. from ``fusion_aft.data.splits``).
        cache_dir: root of the banks (default ``fusion_aft.paths.bank_cache_dir()``).
        batch_size: rows per forward pass; chunks are ``chunk_rows`` rows, a multiple of it.
        device: where teachers given by name are loaded and run.
        dtype: ``fp16`` (default, half the disk) or ``fp32``.
        num_workers: DataLoader workers running ``teacher.prepare``; ``None`` picks, ``0`` = none.
        progress: show a progress bar (rows, rows/s, ETA) on stderr.
        chunk_rows: rows per checkpoint (default: about 1024, a multiple of ``batch_size``).
        lock_timeout: seconds to wait for another writer of the same bank; ``None`` waits.
    """
    from fusion_aft import distributed

    _np_dtype(dtype)  # cheap options first: a typo must not cost loading the data and teachers
    if batch_size < 1:
        raise UserInputError(f"batch size must be at least 1, got {batch_size}")
    if distributed.launched():
        from fusion_aft.bank.distributed import extract_distributed

        return extract_distributed(
            teachers, dataset, split, cache_dir, batch_size, device, dtype, num_workers, progress,
            dataset_options, chunk_rows=chunk_rows, lock_timeout=lock_timeout, shared_fs=shared_fs,
        )
    dataset_name, the_split = _resolve_data(dataset, split, dataset_options)
    banks = [
        extract_one(
            t,
            the_split,
            dataset_name,
            cache_dir,
            batch_size,
            dtype,
            num_workers,
            progress,
            chunk_rows,
            lock_timeout,
            device,
        )
        for t in _resolve_teachers(teachers, device)
    ]
    return JointBank(banks)


# -- planning (--dry-run) --------------------------------------------------------------------------
@dataclass
class PlanEntry:
    """What extracting one teacher would do."""

    teacher: str
    rows: int
    width: int
    dtype: str
    bytes: int
    rows_done: int
    folder: str
    seconds_per_row: float | None
    estimate_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plan(
    teachers: Any,
    dataset: Any,
    split: Any = "train",
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    device: Any = "cpu",
    dtype: str = "fp16",
    dataset_options: dict[str, Any] | None = None,
    timing_rows: int | None = None,
) -> list[PlanEntry]:
    """The extraction plan: rows, width, bytes on disk, rows already done, and a time estimate.

    The estimate times one forward pass of ``timing_rows`` rows (default one batch) after a
    warm-up pass, and scales it to the rows left to do.
    """
    from fusion_aft.data.fingerprint import dataset_fingerprint

    np_dtype = _np_dtype(dtype)
    dataset_name, the_split = _resolve_data(dataset, split, dataset_options)
    dfp = dataset_fingerprint(the_split)
    entries = []
    for teacher in _resolve_teachers(teachers, device):
        _check_modality(teacher, the_split, dataset_name)
        ref = _teacher_ref(teacher)
        tfp = str(teacher.spec.fingerprint())
        width = int(teacher.spec.width)
        folder = bank_folder(cache_dir, dataset_name, the_split.name, dfp, ref, tfp, np_dtype)
        done = 0
        if (folder / "manifest.json").exists():
            try:
                done = read_manifest(folder).rows_done
            except CorruptBankError:
                done = 0
        rows = len(the_split)
        per_row = None
        if done < rows:
            n = min(rows, timing_rows or batch_size)
            batch = teacher.collate([teacher.prepare(the_split[i]) for i in range(n)])
            _forward(teacher, batch)
            t0 = time.perf_counter()
            batch = teacher.collate([teacher.prepare(the_split[i]) for i in range(n)])
            _forward(teacher, batch)
            per_row = (time.perf_counter() - t0) / n
        nbytes = rows * width * np.dtype(np_dtype).itemsize
        entries.append(
            PlanEntry(
                teacher=ref,
                rows=rows,
                width=width,
                dtype=np_dtype,
                bytes=nbytes,
                rows_done=done,
                folder=str(folder),
                seconds_per_row=per_row,
                estimate_s=None if per_row is None else per_row * (rows - done),
            )
        )
    return entries
