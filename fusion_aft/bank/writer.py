"""The one writer of the bank format: files, manifest, chunks, statistics and the bank's lock.

A bank folder holds ``ids.npy``, ``digests.npy``, ``features.npy`` (preallocated, filled chunk by
chunk) and ``manifest.json`` (see :mod:`fusion_aft.bank.manifest`). Extraction (single- and
multi-process) and the synthetic banks of the performance benchmarks all write through here, so
the layout has one owner.
"""

from __future__ import annotations

import errno
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from fusion_aft.bank.index import encode_ids
from fusion_aft.bank.manifest import (
    BankManifest,
    ChunkInfo,
    CorruptBankError,
    DatasetInfo,
    FeatureStats,
    TeacherInfo,
    library_versions,
    now,
    read_manifest,
    write_manifest,
)
from fusion_aft.bank.store import DIGESTS, FEATURES, IDS, LOCK, TeacherBank, chunk_sha256
from fusion_aft.errors import UserInputError
from fusion_aft.fileio import atomic_write_bytes, file_sha256

__all__ = [
    "BankLockedError",
    "chunk_info",
    "create_bank",
    "discard_bank",
    "feature_stats",
    "finish_bank",
    "kept_note",
    "lock_bank",
    "npy_bytes",
    "remove_empty",
    "resume_point",
    "rows_on_disk",
    "store_chunk",
    "write_error",
]

log = logging.getLogger(__name__)


class BankLockedError(UserInputError):
    """Another process is writing the same bank and ``lock_timeout`` ran out."""



def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of a ``.npy`` file (no pickles)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def create_bank(
    folder: Path,
    info: TeacherInfo,
    dataset: DatasetInfo,
    ids: Any,
    digests: np.ndarray,
    dtype: str,
    batch_size: int,
    chunk_rows: int,
    device: str = "cpu",
) -> BankManifest:
    """Start a bank: ids, record digests, a preallocated feature file and a manifest of 0 rows.

    ``ids`` are the split's sample ids (strings or an encoded ``S`` array), ``digests`` one
    ``uint64`` content digest per row; the features are filled by :func:`store_chunk`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (FEATURES, IDS, DIGESTS):
        (folder / stale).unlink(missing_ok=True)
    encoded = encode_ids(ids)
    rows = len(encoded)
    atomic_write_bytes(folder / IDS, npy_bytes(encoded))
    atomic_write_bytes(folder / DIGESTS, npy_bytes(np.asarray(digests, dtype="<u8")))
    features = np.lib.format.open_memmap(folder / FEATURES, mode="w+", dtype=dtype, shape=(rows, info.width))
    del features
    reserve(folder / FEATURES)
    stamp = now()
    manifest = BankManifest(
        teacher=info,
        dataset=dataset,
        dtype=dtype,  # type: ignore[arg-type]
        shape=(rows, info.width),
        batch_size=batch_size,
        chunk_rows=chunk_rows,
        rows_done=0,
        ids_sha256=file_sha256(folder / IDS),
        digests_sha256=file_sha256(folder / DIGESTS),
        device=str(device),
        extract_seconds=0.0,
        versions=library_versions(),
        created=stamp,
        updated=stamp,
    )
    write_manifest(folder, manifest)
    return manifest


def reserve(path: Path) -> None:
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


def resume_point(folder: Path, manifest: BankManifest) -> BankManifest:
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


def feature_stats(features: np.ndarray, block: int = 65536) -> FeatureStats:
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


def store_chunk(
    folder: Path,
    manifest: BankManifest,
    features: np.ndarray,
    start: int,
    block: np.ndarray,
    *,
    flush: bool = True,
    save: bool = True,
    seconds: float | None = None,
) -> None:
    """Write ``block`` as rows ``start..`` of the memory-mapped ``features`` and record the chunk.

    With ``flush`` the rows reach the file before the manifest names them, so a run killed at any
    moment resumes from the last recorded chunk; ``save`` writes the manifest now. ``seconds``,
    when given, is the bank's extraction time so far (its earlier runs plus this one).
    """
    stop = start + len(block)
    features[start:stop] = block
    if flush:
        features.flush()
    manifest.chunks.append(chunk_info(start, stop, block))
    manifest.rows_done = stop
    if seconds is not None:
        manifest.extract_seconds = round(seconds, 3)
    if save:
        write_manifest(folder, manifest)


def kept_note(folder: Path, rows_done: int) -> str:
    if not rows_done:
        return ""
    return f"; finished rows 0..{rows_done - 1} are kept in {folder} and the next run resumes there"


def chunk_info(start: int, stop: int, block: np.ndarray) -> Any:

    return ChunkInfo(start=start, stop=stop, sha256=chunk_sha256(block))


def finish_bank(folder: Path, manifest: BankManifest) -> None:
    feats = np.load(folder / FEATURES, mmap_mode="r")
    manifest.stats = feature_stats(feats)
    del feats
    manifest.complete = True
    write_manifest(folder, manifest)


def lock_bank(folder: Path, timeout: float | None) -> FileLock:
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


def rows_on_disk(folder: Path) -> int:
    """Rows the manifest on disk says are finished (the in-memory one may be a chunk ahead)."""
    try:
        return read_manifest(folder).rows_done
    except (CorruptBankError, OSError):
        return 0


def write_error(folder: Path, exc: OSError, rows_done: int) -> UserInputError:
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


def discard_bank(folder: Path) -> None:
    """Remove the files of a bank this call created and that holds no finished row."""
    for name in (FEATURES, IDS, DIGESTS, "manifest.json"):
        try:
            (folder / name).unlink(missing_ok=True)
        except OSError:
            pass


def remove_empty(folder: Path) -> None:
    """Remove the bank folder (and its dataset folder) once nothing but the lock is left."""
    try:
        if {p.name for p in folder.iterdir()} <= {LOCK}:
            (folder / LOCK).unlink(missing_ok=True)
            folder.rmdir()
            folder.parent.rmdir()  # only succeeds when no other teacher's bank is in it
    except OSError:
        pass
