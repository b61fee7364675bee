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

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion_aft.bank.joint import JointBank
from fusion_aft.bank.manifest import BankManifest, CorruptBankError, DatasetInfo, read_manifest
from fusion_aft.bank.pipeline import (
    Failed,
    NonFiniteFeaturesError,
    Progress,
    ahead,
    auto_workers,
    bank_dtype,
    cast_checked,
    check_modality,
    default_chunk_rows,
    forward,
    make_loader,
    measured_workers,
    resolve_data,
    resolve_teachers,
    spare_core,
    teacher_info,
    teacher_ref,
)
from fusion_aft.bank.store import FEATURES, TeacherBank, bank_folder
from fusion_aft.bank.writer import (
    BankLockedError,
    create_bank,
    discard_bank,
    finish_bank,
    kept_note,
    lock_bank,
    remove_empty,
    resume_point,
    rows_on_disk,
    store_chunk,
    write_error,
)
from fusion_aft.errors import UserInputError

__all__ = ["BankLockedError", "NonFiniteFeaturesError", "PlanEntry", "extract", "plan"]

log = logging.getLogger(__name__)


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
        # this run's time counts from here; earlier runs' time is already in the manifest
        self.started = time.perf_counter()
        self.earlier_seconds = float(manifest.extract_seconds or 0.0)
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
        kept = kept_note(self.folder, self.chunk_start)
        stored = cast_checked(values, self.np_dtype, m.teacher.ref, self.split.ids, self.pos, kept)
        self.pending.append(stored)
        self.pos += len(stored)
        if self.pos - self.chunk_start >= m.chunk_rows or self.pos == self.rows:
            seconds = self.earlier_seconds + time.perf_counter() - self.started
            block = np.concatenate(self.pending)
            store_chunk(self.folder, m, self.features, self.chunk_start, block, seconds=seconds)
            self.pending, self.chunk_start = [], self.pos


def _run(
    folder: Path,
    manifest: BankManifest,
    teacher: Any,
    split: Any,
    num_workers: int | None,
    bar: Progress,
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
    loader = make_loader(split, teacher, start, manifest.batch_size, workers)
    batches = iter(ahead(loader) if workers == 0 and len(loader) > 1 and spare_core() else loader)
    writer = _ChunkWriter(folder, manifest, split, features, depth=manifest.chunk_rows // manifest.batch_size)
    pos = start
    try:
        for batch in batches:
            writer.check()
            if isinstance(batch, Failed):
                writer.close()  # finished chunks are recorded before the error names them
                raise UserInputError(f"{batch.message}{kept_note(folder, writer.chunk_start)}")
            values = forward(teacher, batch)
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
    from fusion_aft.data.fingerprint import dataset_fingerprint, record_digests

    np_dtype = bank_dtype(dtype)
    if batch_size < 1:
        raise UserInputError(f"batch size must be at least 1, got {batch_size}")
    chunk_rows = int(chunk_rows or default_chunk_rows(batch_size))
    if chunk_rows % batch_size:
        raise UserInputError(f"chunk_rows ({chunk_rows}) must be a multiple of the batch size ({batch_size})")
    if len(split) == 0:
        raise UserInputError(f"split '{split.name}' of dataset '{dataset_name}' is empty; nothing to extract")
    check_modality(teacher, split, dataset_name)
    info = teacher_info(teacher)
    dfp = dataset_fingerprint(split)
    folder = bank_folder(cache_dir, dataset_name, split.name, dfp, info.ref, info.fingerprint, np_dtype)
    dataset = DatasetInfo(name=dataset_name, split=split.name, fingerprint=dfp, rows=len(split))
    try:
        lock = lock_bank(folder, lock_timeout)
    except OSError as exc:
        raise write_error(folder, exc, 0) from None
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
            manifest = resume_point(folder, manifest)
            log.info("resuming %s at row %d of %d", folder, manifest.rows_done, manifest.shape[0])
        if manifest is None:
            digests = record_digests(split)
            manifest = create_bank(
                folder, info, dataset, split.ids, digests, np_dtype, batch_size, chunk_rows, str(device)
            )
        with Progress(progress) as bar:
            _run(folder, manifest, teacher, split, num_workers, bar)
        finish_bank(folder, manifest)
        opened = TeacherBank.open(folder)
        failed = False
        return opened
    except OSError as exc:
        raise write_error(folder, exc, rows_on_disk(folder)) from None
    finally:
        # a bank this call created that failed before its first chunk is removed, not left empty
        discard = failed and fresh and (manifest is None or manifest.rows_done == 0)
        if discard:
            discard_bank(folder)
        lock.release()
        if discard:
            remove_empty(folder)


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

    bank_dtype(dtype)  # cheap options first: a typo must not cost loading the data and teachers
    if batch_size < 1:
        raise UserInputError(f"batch size must be at least 1, got {batch_size}")
    if distributed.launched():
        from fusion_aft.bank.distributed import extract_distributed

        return extract_distributed(
            teachers, dataset, split, cache_dir, batch_size, device, dtype, num_workers, progress,
            dataset_options, chunk_rows=chunk_rows, lock_timeout=lock_timeout, shared_fs=shared_fs,
        )
    dataset_name, the_split = resolve_data(dataset, split, dataset_options)
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
        for t in resolve_teachers(teachers, device)
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

    np_dtype = bank_dtype(dtype)
    dataset_name, the_split = resolve_data(dataset, split, dataset_options)
    dfp = dataset_fingerprint(the_split)
    entries = []
    for teacher in resolve_teachers(teachers, device):
        check_modality(teacher, the_split, dataset_name)
        ref = teacher_ref(teacher)
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
            forward(teacher, batch)
            t0 = time.perf_counter()
            batch = teacher.collate([teacher.prepare(the_split[i]) for i in range(n)])
            forward(teacher, batch)
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
