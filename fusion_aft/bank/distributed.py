"""Feature extraction by several processes (``torchrun``): disjoint shards, one bank.

The rows of a split are cut into the chunks of the single-process extraction (``chunk_rows``
rows each, a multiple of the batch size). The chunks still to do are dealt out to the ranks in
contiguous runs, so every rank forms exactly the batches a single process would form, and the
bank ends byte-identical to a single-process one (features, ids, digests; the manifest differs
only in its times and device).

Two modes, picked by ``shared_fs`` (``None`` = detect: every rank writes a probe file into the
cache folder and looks for the others'):

* **shared filesystem** (one machine, or NFS/Lustre/GPFS seen by every node): rank 0 creates or
  resumes the bank and holds its lock; after a barrier every rank writes its chunks straight into
  the one feature file with positional writes to its own byte ranges (``os.pwrite`` + ``fsync``,
  never a shared memory map, so no page is written by two hosts), and leaves a marker per finished
  chunk with the chunk's sha256. After a second barrier rank 0 checks every chunk against its
  marker, writes the manifest (chunk checksums, feature statistics) and removes the markers.
* **shard + merge** (node-local disks): each rank writes its chunks as part files
  (``.parts/rows-A-B.npy`` + marker) on its own disk; then, chunk by chunk, the rank holding a
  chunk sends its bytes (point to point over gloo) to the writer of every filesystem that lacks
  it: the lowest rank that sees each cache folder. Every node ends with the complete bank.

Resume: a killed job keeps its finished chunks (markers, part files, the manifest's chunks);
the next run, with any number of processes, checks them and computes only the rest.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion_aft import distributed as dist_util
from fusion_aft.bank.fs_layout import FsLayout, MergeLayout, filesystem_layout, layout_world
from fusion_aft.bank.joint import JointBank
from fusion_aft.bank.manifest import (
    BankManifest,
    ChunkInfo,
    DatasetInfo,
    read_manifest,
    write_manifest,
)
from fusion_aft.bank.pipeline import (
    Collate,
    Failed,
    PreparedRows,
    Progress,
    auto_workers,
    bank_dtype,
    cast_checked,
    check_modality,
    default_chunk_rows,
    forward,
    resolve_data,
    resolve_teachers,
    teacher_info,
    teacher_ref,
)
from fusion_aft.bank.store import FEATURES, TeacherBank, bank_folder, chunk_sha256, resolve_cache_dir
from fusion_aft.bank.writer import chunk_info, create_bank, finish_bank, lock_bank, resume_point
from fusion_aft.distributed import shard
from fusion_aft.errors import UserInputError
from fusion_aft.fileio import atomic_write_bytes

__all__ = ["FsLayout", "PARTS", "chunk_bounds", "extract_distributed", "filesystem_layout"]

log = logging.getLogger(__name__)

#: folder (inside a bank folder) with per-chunk markers and, in shard + merge mode, part files
PARTS = ".parts"


# -- geometry -------------------------------------------------------------------------------------
def chunk_bounds(rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of every chunk, as the single-process extraction cuts them."""
    return [(s, min(rows, s + chunk_rows)) for s in range(0, rows, chunk_rows)]


def _runs(chunks: Sequence[int]) -> list[list[int]]:
    """Consecutive chunk indices grouped: ``[1, 2, 3, 7, 8]`` → ``[[1, 2, 3], [7, 8]]``."""
    out: list[list[int]] = []
    for c in chunks:
        if out and out[-1][-1] + 1 == c:
            out[-1].append(c)
        else:
            out.append([c])
    return out


# -- per-chunk markers and part files -------------------------------------------------------------
def _stem(start: int, stop: int) -> str:
    return f"rows-{start:010d}-{stop:010d}"


def _write_marker(parts: Path, start: int, stop: int, sha: str, batch_size: int) -> None:
    text = json.dumps({"start": start, "stop": stop, "sha256": sha, "batch_size": batch_size})
    atomic_write_bytes(parts / f"{_stem(start, stop)}.json", text.encode("utf8"))


def _read_marker(parts: Path, start: int, stop: int) -> dict[str, Any] | None:
    path = parts / f"{_stem(start, stop)}.json"
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError):
        return None
    if data.get("start") != start or data.get("stop") != stop:
        return None
    return data


def _feature_offset(path: Path) -> int:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        reader = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        reader(f)
        return f.tell()


class _RowRange(PreparedRows):
    """Rows ``start..stop`` of ``split`` through ``teacher.prepare``."""

    def __init__(self, split: Any, teacher: Any, start: int, stop: int) -> None:
        super().__init__(split, teacher, start)
        self.stop = stop

    def __len__(self) -> int:
        return self.stop - self.start


# -- the teacher's side ----------------------------------------------------------------------------
@dataclass
class _Job:
    folder: Path
    teacher: Any
    split: Any
    rows: int
    width: int
    dtype: np.dtype
    batch_size: int
    chunk_rows: int
    num_workers: int | None
    #: ``time.perf_counter()`` when this run started; the manifest adds this run's time
    started: float = 0.0

    @property
    def bounds(self) -> list[tuple[int, int]]:
        return chunk_bounds(self.rows, self.chunk_rows)

    @property
    def parts(self) -> Path:
        return self.folder / PARTS

    def nbytes(self, start: int, stop: int) -> int:
        return (stop - start) * self.width * self.dtype.itemsize


def _compute(job: _Job, chunks: list[int], shared: bool, bar: Progress) -> None:
    """Extract ``chunks`` (indices) and store each: in place (shared) or as a part file."""
    from torch.utils.data import DataLoader

    if not chunks:
        return
    ref = teacher_ref(job.teacher)
    bounds = job.bounds
    total = sum(bounds[c][1] - bounds[c][0] for c in chunks)
    task = bar.task(f"{ref} · rank {dist_util.rank()}", total, 0)
    job.parts.mkdir(parents=True, exist_ok=True)
    fd = os.open(job.folder / FEATURES, os.O_WRONLY) if shared else None
    offset = _feature_offset(job.folder / FEATURES) if shared else 0
    row_bytes = job.width * job.dtype.itemsize
    try:
        for run in _runs(chunks):
            start, stop = bounds[run[0]][0], bounds[run[-1]][1]
            workers = job.num_workers
            if workers is None:
                workers = auto_workers(stop - start, job.batch_size)
            loader = DataLoader(
                _RowRange(job.split, job.teacher, start, stop),
                batch_size=job.batch_size,
                shuffle=False,
                collate_fn=Collate(job.teacher),
                num_workers=workers,
                prefetch_factor=4 if workers else None,
            )
            pending: list[np.ndarray] = []
            chunk_start = pos = start
            for batch in loader:
                if isinstance(batch, Failed):
                    raise UserInputError(batch.message)
                stored = _checked(job, forward(job.teacher, batch), pos)
                pending.append(stored)
                pos += len(stored)
                bar.advance(task, len(stored))
                if pos - chunk_start >= job.chunk_rows or pos == stop:
                    block = np.ascontiguousarray(np.concatenate(pending))
                    sha = chunk_sha256(block)
                    if fd is not None:
                        os.pwrite(fd, block.tobytes(), offset + chunk_start * row_bytes)
                        os.fsync(fd)
                    else:
                        _save_part(job.parts / f"{_stem(chunk_start, pos)}.npy", block)
                    _write_marker(job.parts, chunk_start, pos, sha, job.batch_size)
                    log.debug("rank %d: rows %d..%d of %s done", dist_util.rank(), chunk_start, pos, ref)
                    pending, chunk_start = [], pos
            if pos != stop:
                raise UserInputError(f"extraction of '{ref}' stopped at row {pos}, expected {stop}")
    finally:
        if fd is not None:
            os.close(fd)


def _checked(job: _Job, values: np.ndarray, pos: int) -> np.ndarray:
    ref = teacher_ref(job.teacher)
    if values.ndim != 2 or values.shape[1] != job.width:
        raise UserInputError(
            f"teacher '{ref}' returned features of shape {list(values.shape)}; "
            f"its card says width {job.width}"
        )
    kept = "; finished chunks are kept and the next run resumes there"
    return cast_checked(values, job.dtype, ref, job.split.ids, pos, kept)


def _save_part(path: Path, block: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, block, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _load_part(job: _Job, start: int, stop: int) -> np.ndarray | None:
    path = job.parts / f"{_stem(start, stop)}.npy"
    try:
        block = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if block.shape != (stop - start, job.width) or block.dtype != job.dtype:
        return None
    return block


# -- the writer's side -----------------------------------------------------------------------------
@dataclass
class _State:
    """What one filesystem holds of a bank (reported by its writer)."""

    complete: bool
    batch_size: int
    chunk_rows: int
    in_file: dict[int, str]  # chunk index → sha256 of its rows in the feature file
    in_parts: dict[int, str]  # chunk index → sha256 of its part file


def _prepare(
    folder: Path,
    teacher: Any,
    split: Any,
    dataset_name: str,
    np_dtype: str,
    batch_size: int,
    chunk_rows: int,
    device: Any,
) -> tuple[_State, BankManifest]:
    """Create or resume this filesystem's copy of the bank; report which chunks it holds."""
    from fusion_aft.data.fingerprint import dataset_fingerprint, record_digests

    info = teacher_info(teacher)
    dfp = dataset_fingerprint(split)
    dataset = DatasetInfo(name=dataset_name, split=split.name, fingerprint=dfp, rows=len(split))
    if (folder / "manifest.json").exists():
        manifest = read_manifest(folder)
        bank = TeacherBank(folder, manifest)
        bank.check_teacher(info.ref, info.fingerprint, info.weights_digest)
        if manifest.dataset.fingerprint != dfp:
            bank.check_split(split)
        if manifest.complete:
            state = _State(True, manifest.batch_size, manifest.chunk_rows, {}, {})
            return state, manifest
        manifest = resume_point(folder, manifest)
    else:
        shutil.rmtree(folder / PARTS, ignore_errors=True)
        digests = record_digests(split)
        manifest = create_bank(
            folder, info, dataset, split.ids, digests, np_dtype, batch_size, chunk_rows, str(device)
        )
    bounds = chunk_bounds(manifest.shape[0], manifest.chunk_rows)
    in_file = {i: c.sha256 for i, c in enumerate(manifest.chunks)}
    in_parts: dict[int, str] = {}
    parts = folder / PARTS
    if parts.is_dir():
        job = _job(folder, teacher, split, manifest, None)
        feats = np.load(folder / FEATURES, mmap_mode="r")
        for i, (start, stop) in enumerate(bounds):
            if i in in_file:
                continue
            marker = _read_marker(parts, start, stop)
            if marker is None or marker.get("batch_size") != manifest.batch_size:
                continue
            block = _load_part(job, start, stop)
            if block is not None and chunk_sha256(block) == marker["sha256"]:
                in_parts[i] = marker["sha256"]
            elif chunk_sha256(feats[start:stop]) == marker["sha256"]:
                in_file[i] = marker["sha256"]
        del feats
    state = _State(False, manifest.batch_size, manifest.chunk_rows, in_file, in_parts)
    return state, manifest


def _job(folder: Path, teacher: Any, split: Any, manifest: BankManifest, num_workers: int | None) -> _Job:
    return _Job(
        folder=folder,
        teacher=teacher,
        split=split,
        rows=manifest.shape[0],
        width=manifest.shape[1],
        dtype=np.dtype(manifest.dtype),
        batch_size=manifest.batch_size,
        chunk_rows=manifest.chunk_rows,
        num_workers=num_workers,
        started=time.perf_counter(),
    )


def _finalise(job: _Job, manifest: BankManifest, known: dict[int, str]) -> None:
    """Check every chunk of the feature file, record its checksum, write the finished manifest."""
    missing = [b for i, b in enumerate(job.bounds) if i not in known]
    if missing:
        start, stop = missing[0]
        raise UserInputError(
            f"bank {job.folder}: {len(missing)} chunk(s), e.g. rows {start}..{stop - 1}, were not finished "
            "by the process they were given to; run the same command again to extract them"
        )
    feats = np.load(job.folder / FEATURES, mmap_mode="r")
    chunks: list[ChunkInfo] = []
    for i, (start, stop) in enumerate(job.bounds):
        block = feats[start:stop]
        info = chunk_info(start, stop, block)
        if known.get(i) not in (None, info.sha256):
            raise UserInputError(
                f"bank {job.folder}: rows {start}..{stop - 1} do not match the checksum their rank "
                "recorded (a write was lost on the shared filesystem); run the same command again "
                "to redo them, or use --no-shared-fs"
            )
        chunks.append(info)
    del feats
    manifest.chunks = chunks
    manifest.rows_done = job.rows
    earlier = float(manifest.extract_seconds or 0.0)
    manifest.extract_seconds = round(earlier + time.perf_counter() - job.started, 3)
    write_manifest(job.folder, manifest)
    finish_bank(job.folder, manifest)
    shutil.rmtree(job.parts, ignore_errors=True)


# -- one teacher -----------------------------------------------------------------------------------
def _extract_teacher(
    teacher: Any,
    split: Any,
    dataset_name: str,
    cache_dir: str | Path | None,
    batch_size: int,
    np_dtype: str,
    num_workers: int | None,
    progress: bool,
    chunk_rows: int,
    lock_timeout: float | None,
    device: Any,
    layout: FsLayout,
) -> TeacherBank:
    from fusion_aft.data.fingerprint import dataset_fingerprint

    me = layout.rank
    check_modality(teacher, split, dataset_name)
    info = teacher_info(teacher)
    dfp = dataset_fingerprint(split)
    folder = bank_folder(cache_dir, dataset_name, split.name, dfp, info.ref, info.fingerprint, np_dtype)
    lock = lock_bank(folder, lock_timeout) if layout.is_writer else None
    try:
        state: _State | None = None
        manifest: BankManifest | None = None
        error: str | None = None
        if layout.is_writer:
            try:
                state, manifest = _prepare(
                    folder, teacher, split, dataset_name, np_dtype, batch_size, chunk_rows, device
                )
            except UserInputError as exc:
                error = str(exc)
        reports = dist_util.all_gather_object((state, error))
        errors = [e for _, e in reports if e]
        if errors:
            raise UserInputError(errors[0])
        states = {r: s for r, (s, _) in enumerate(reports) if s is not None}
        geometry = {(s.batch_size, s.chunk_rows) for s in states.values()}
        if len(geometry) > 1:
            raise UserInputError(
                f"the copies of bank {folder.name} on the nodes were started with different batch or "
                f"chunk sizes {sorted(geometry)}; delete the unfinished copies and run again"
            )
        if all(s.complete for s in states.values()):
            dist_util.barrier()
            return TeacherBank.open(folder)
        cr = next(iter(geometry))[1]
        if layout.is_writer:
            assert manifest is not None
        else:
            manifest = read_manifest(folder)
        job = _job(folder, teacher, split, manifest, num_workers)
        n_chunks = len(job.bounds)
        held = {c for s in states.values() if not s.complete for c in (*s.in_file, *s.in_parts)}
        if any(s.complete for s in states.values()):
            held = set(range(n_chunks))  # a complete copy can serve every chunk
        todo = [c for c in range(n_chunks) if c not in held]
        mine = shard(todo, me, layout_world(layout))
        if me == 0:
            log.info(
                "%s: %d of %d chunks to extract on %d ranks (%d filesystem(s))",
                info.ref,
                len(todo),
                n_chunks,
                layout_world(layout),
                len(layout.groups),
            )
            if 0 < len(todo) < layout_world(layout):
                log.info(
                    "only %d chunk(s) of %d rows to extract for %d ranks: some ranks wait; pass a smaller "
                    "--chunk-rows (a multiple of the batch size) to share the work",
                    len(todo),
                    cr,
                    layout_world(layout),
                )
        with Progress(progress and me == 0) as bar:
            _compute(job, mine, layout.shared, bar)
        dist_util.barrier()
        if layout.shared:
            if layout.is_writer:
                known = dict(state.in_file) if state else {}
                for i, (start, stop) in enumerate(job.bounds):
                    marker = _read_marker(job.parts, start, stop)
                    if i not in known and marker is not None:
                        known[i] = marker["sha256"]
                _finalise(job, manifest, known)
        else:
            _merge(job, manifest, layout, states, set(todo), mine_of=lambda c: _owner(c, todo, layout))
        dist_util.barrier()
        return TeacherBank.open(folder)
    finally:
        if lock is not None:
            lock.release()


def _owner(chunk: int, todo: list[int], layout: FsLayout) -> int:
    world = layout_world(layout)
    for r in range(world):
        if chunk in shard(todo, r, world):
            return r
    raise AssertionError(chunk)


def _merge(
    job: _Job,
    manifest: BankManifest,
    layout: FsLayout,
    states: dict[int, _State],
    computed: set[int],
    mine_of: Any,
) -> None:
    """Send every chunk to each filesystem whose feature file lacks it; writers then finish."""
    import torch
    import torch.distributed as dist

    me = layout.rank
    group = dist_util.cpu_group()
    fd = os.open(job.folder / FEATURES, os.O_WRONLY) if layout.is_writer else None
    offset = _feature_offset(job.folder / FEATURES) if layout.is_writer else 0
    row_bytes = job.width * job.dtype.itemsize
    known: dict[int, str] = dict(states[me].in_file) if layout.is_writer else {}
    try:
        for c, (start, stop) in enumerate(job.bounds):
            needers = [w for w in layout.writers if not states[w].complete and c not in states[w].in_file]
            if not needers:
                continue
            if c in computed:
                source = mine_of(c)
            else:
                source = min(
                    r
                    for r in range(layout_world(layout))
                    if (s := states[layout.writer_of(r)]).complete or c in s.in_file or c in s.in_parts
                )
            data: np.ndarray | None = None
            if me == source:
                data = _read_chunk(job, c, states[layout.writer_of(me)], start, stop)
            for w in needers:
                payload: np.ndarray | None = None
                if me == source and w == source:
                    payload = data
                elif me == source:
                    assert data is not None
                    dist.send(torch.from_numpy(data.view(np.uint8).reshape(-1)), dst=w, group=group)
                elif me == w:
                    buf = torch.empty(job.nbytes(start, stop), dtype=torch.uint8)
                    dist.recv(buf, src=source, group=group)
                    payload = buf.numpy().view(job.dtype).reshape(stop - start, job.width)
                if payload is not None and fd is not None:
                    os.pwrite(fd, np.ascontiguousarray(payload).tobytes(), offset + start * row_bytes)
                    known[c] = chunk_sha256(payload)
        if fd is not None:
            os.fsync(fd)
    finally:
        if fd is not None:
            os.close(fd)
    if layout.is_writer and not states[me].complete:
        _finalise(job, manifest, known)


def _read_chunk(job: _Job, c: int, state: _State, start: int, stop: int) -> np.ndarray:
    """A chunk's rows from this filesystem: its part file, else the feature file."""
    block = _load_part(job, start, stop)
    if block is None or (c in state.in_parts and chunk_sha256(block) != state.in_parts[c]):
        feats = np.load(job.folder / FEATURES, mmap_mode="r")
        block = np.array(feats[start:stop])
        del feats
    return np.ascontiguousarray(block)


# -- entry point -----------------------------------------------------------------------------------
def extract_distributed(
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
    """:func:`fusion_aft.extract` run collectively by every rank of a ``torchrun`` job.

    Every rank must call it with the same arguments. Returns the joint bank on every rank (on
    node-local disks, each node's own complete copy). ``shared_fs``: see the module docstring.
    """
    np_dtype = bank_dtype(dtype)
    if batch_size < 1:
        raise UserInputError(f"batch size must be at least 1, got {batch_size}")
    chunk_rows = int(chunk_rows or default_chunk_rows(batch_size))
    if chunk_rows % batch_size:
        raise UserInputError(f"chunk_rows ({chunk_rows}) must be a multiple of the batch size ({batch_size})")
    dist_util.init(device)
    device = dist_util.local_device(device)
    dataset_name, the_split = resolve_data(dataset, split, dataset_options)
    layout = filesystem_layout(resolve_cache_dir(cache_dir), shared_fs)
    if dist_util.is_main():
        mode = "shared filesystem" if layout.shared and shared_fs is not False else "shard + merge"
        log.info("distributed extraction on %d ranks: %s", layout_world(layout), mode)
    if shared_fs is False and layout.shared:
        layout = MergeLayout(layout.groups, layout.rank)
    banks = [
        _extract_teacher(
            t,
            the_split,
            dataset_name,
            cache_dir,
            batch_size,
            np_dtype,
            num_workers,
            progress,
            chunk_rows,
            lock_timeout,
            device,
            layout,
        )
        for t in resolve_teachers(teachers, device)
    ]
    return JointBank(banks)
