"""On-disk feature banks: one folder per (teacher fingerprint, dataset fingerprint, split).

Layout under the cache folder (``fusion_aft.paths.bank_cache_dir()`` by default)::

    <dataset>-<split>-<dataset fp[:12]>/
        <teacher ref>-<teacher fp[:12]>-<dtype>/
            features.npy    float16/float32 [rows, width], memory-mapped, preallocated
            ids.npy         the sample ids (UTF-8, numpy "S" dtype), in row order
            digests.npy     uint64 prefix of each record's content digest (to name changed rows)
            manifest.json   BankManifest (see fusion_aft.bank.manifest)
            .lock           filelock of the writer

A bank is opened for reading with :meth:`TeacherBank.open`; it is checked against a teacher
(:meth:`TeacherBank.check_teacher`) and a split (:meth:`TeacherBank.check_split`), and a
mismatch is a :class:`~fusion_aft.errors.StaleBankError` saying what differs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion_aft import paths
from fusion_aft.bank.manifest import MANIFEST, BankManifest, CorruptBankError, read_manifest
from fusion_aft.errors import StaleBankError
from fusion_aft.fileio import file_sha256

__all__ = [
    "DIGESTS",
    "FEATURES",
    "IDS",
    "LOCK",
    "TeacherBank",
    "VerifyReport",
    "bank_folder",
    "chunk_sha256",
    "find_banks",
    "resolve_cache_dir",
    "safe_name",
    "verify_bank",
]

log = logging.getLogger(__name__)

FEATURES = "features.npy"
IDS = "ids.npy"
DIGESTS = "digests.npy"
LOCK = ".lock"
DTYPES = {"fp16": "float16", "float16": "float16", "fp32": "float32", "float32": "float32"}


def safe_name(text: str) -> str:
    """``text`` reduced to a portable folder-name fragment (``a/b?x=1`` → ``a_b_x=1``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("._") or "x"
    return cleaned[:80]


def resolve_cache_dir(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else paths.bank_cache_dir()


def bank_folder(
    cache_dir: str | Path | None,
    dataset_name: str,
    split_name: str,
    dataset_fp: str,
    teacher_ref: str,
    teacher_fp: str,
    dtype: str,
) -> Path:
    """The folder of the bank for these fingerprints (see the module docstring)."""
    root = resolve_cache_dir(cache_dir)
    group = f"{safe_name(dataset_name)}-{safe_name(split_name)}-{dataset_fp[:12]}"
    return root / group / f"{safe_name(teacher_ref)}-{teacher_fp[:12]}-{DTYPES[dtype]}"


def chunk_sha256(block: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(block).tobytes()).hexdigest()


def _npy_header_size(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        fmt = np.lib.format
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _fortran, dtype = reader(f)
        return f.tell(), tuple(shape), np.dtype(dtype)


class TeacherBank:
    """A read view of one bank folder. Arrays are memory-mapped on first use, never loaded whole."""

    def __init__(self, folder: Path, manifest: BankManifest) -> None:
        self.folder = Path(folder)
        self.manifest = manifest
        self._features: np.ndarray | None = None
        self._ids: np.ndarray | None = None
        self._verified: np.ndarray | None = None
        self._all_verified = False  # every chunk checked by this process: lookups skip the bookkeeping
        self._file: tuple[int, int] | None = None  # (pid, descriptor) of the feature file

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | Path, require_complete: bool = True) -> TeacherBank:
        """Open ``folder``; checks the manifest, file presence and sizes (not the checksums)."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        bank = cls(folder, manifest)
        if require_complete and not manifest.complete:
            raise CorruptBankError(
                f"bank {folder} is incomplete ({manifest.rows_done} of {manifest.shape[0]} rows); "
                "run the extraction again to resume it"
            )
        problems = bank._file_problems()
        if problems:
            raise CorruptBankError(f"bank {folder}: {problems[0]}; run `fusion-aft bank verify {folder}`")
        return bank

    def _file_problems(self) -> list[str]:
        m = self.manifest
        out: list[str] = []
        feats = self.folder / FEATURES
        if not feats.is_file():
            return [f"{FEATURES} is missing"]
        try:
            header, shape, dtype = _npy_header_size(feats)
        except Exception as exc:  # noqa: BLE001 - any parse failure means a damaged file
            return [f"{FEATURES} has a damaged header ({exc})"]
        if shape != tuple(m.shape) or dtype != np.dtype(m.dtype):
            out.append(f"{FEATURES} holds {dtype}{list(shape)}, the manifest says {m.dtype}{list(m.shape)}")
        expected = header + m.shape[0] * m.shape[1] * np.dtype(m.dtype).itemsize
        size = feats.stat().st_size
        if size != expected:
            out.append(f"{FEATURES} is {size} bytes, expected {expected} (truncated or extended)")
        for name in (IDS, DIGESTS):
            if not (self.folder / name).is_file():
                out.append(f"{name} is missing")
        return out

    # -- contents ---------------------------------------------------------------------------------
    @property
    def ref(self) -> str:
        return self.manifest.teacher.ref

    @property
    def width(self) -> int:
        return self.manifest.teacher.width

    @property
    def rows(self) -> int:
        return self.manifest.shape[0]

    @property
    def features(self) -> np.ndarray:
        """``[rows, width]`` memory map (read-only)."""
        if self._features is None:
            self._features = np.load(self.folder / FEATURES, mmap_mode="r")
        return self._features

    @property
    def id_bytes(self) -> np.ndarray:
        """The ids as a memory-mapped numpy ``S`` array, in row order."""
        if self._ids is None:
            self._ids = np.load(self.folder / IDS, mmap_mode="r")
        return self._ids

    @property
    def ids(self) -> list[str]:
        return [b.decode("utf-8") for b in self.id_bytes.tolist()]

    def checked_rows(self, positions: np.ndarray) -> np.ndarray:
        """``features[positions]`` after checking the sha256 of every chunk they fall in against
        the manifest (each chunk once per process), so a damaged file is refused, not used."""
        m = self.manifest
        if self._verified is None:
            self._verified = np.zeros(len(m.chunks), dtype=bool)
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) == 0:
            return self._read_rows(positions)
        if self._all_verified and int(positions.max()) < m.chunks[-1].stop:
            return self._read_rows(positions)  # every chunk checked already: no bookkeeping
        touched = np.unique(positions // m.chunk_rows)
        beyond = touched[touched >= len(m.chunks)]
        if len(beyond):
            raise CorruptBankError(
                f"bank {self.folder}: row {int(beyond[0]) * m.chunk_rows} is beyond its finished chunks; "
                "run the extraction again to finish it"
            )
        # only chunks not yet checked by this process go through the loop (usually none)
        for c in touched[~self._verified[touched]].tolist():
            chunk = m.chunks[c]
            if chunk_sha256(self._read_rows(np.arange(chunk.start, chunk.stop))) != chunk.sha256:
                raise CorruptBankError(
                    f"bank {self.folder}: rows {chunk.start}..{chunk.stop - 1} do not match their checksum "
                    "(the file was changed or damaged); delete the folder to extract it again"
                )
            self._verified[c] = True
        self._all_verified = bool(self._verified.all())
        return self._read_rows(positions)

    def _read_rows(self, positions: np.ndarray) -> np.ndarray:
        """``features[positions]`` as a writable copy, read with ``pread``, one call per run of rows.

        Reads go through the page cache without being mapped into this process, so its resident
        memory stays flat however much of a large bank an epoch touches (fancy indexing of the
        memory map would keep every touched page resident: a whole 4 GB bank after one epoch).
        Falls back to the memory map where ``os.pread`` is missing (Windows).
        """
        feats = self.features
        if not hasattr(os, "pread") or len(positions) == 0:
            return feats[positions]
        row_bytes = feats.shape[1] * feats.dtype.itemsize
        breaks = np.flatnonzero(np.diff(positions) != 1) + 1
        starts = np.concatenate(([0], breaks))
        sizes = np.diff(np.concatenate((starts, [len(positions)]))) * row_bytes
        offsets = feats.offset + positions[starts] * row_bytes
        fd = self._fd()
        pieces = zip(offsets.tolist(), sizes.tolist(), strict=True)
        data = bytearray().join([os.pread(fd, n, off) for off, n in pieces])  # writable, no copy
        if len(data) != len(positions) * row_bytes:
            raise CorruptBankError(f"bank {self.folder}: {FEATURES} is shorter than its manifest says")
        return np.frombuffer(data, dtype=feats.dtype).reshape(len(positions), feats.shape[1])

    def _fd(self) -> int:
        """A read-only descriptor of the feature file, reopened after a fork (DataLoader workers)."""
        fd = self._file
        if fd is None or fd[0] != os.getpid():
            self._file = (os.getpid(), os.open(self.folder / FEATURES, os.O_RDONLY))
        return self._file[1]

    def digests(self) -> np.ndarray:
        return np.load(self.folder / DIGESTS, mmap_mode="r")

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self.manifest.stats.mean if self.manifest.stats else [], dtype=np.float32)

    @property
    def std(self) -> np.ndarray:
        return np.asarray(self.manifest.stats.std if self.manifest.stats else [], dtype=np.float32)

    def close(self) -> None:
        self._features = None
        self._ids = None
        fd = getattr(self, "_file", None)  # absent when __init__ failed before setting it
        if fd is not None and fd[0] == os.getpid():
            os.close(fd[1])
        self._file = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "manifest": self.manifest,
            "_features": None,
            "_ids": None,
            "_verified": self._verified,
            "_all_verified": self._all_verified,
            "_file": None,  # a descriptor does not cross processes; reopened on first read
        }

    def __repr__(self) -> str:
        m = self.manifest
        return f"TeacherBank({m.teacher.ref!r}, {m.dataset.name}/{m.dataset.split}, {m.shape}, {m.dtype})"

    # -- staleness --------------------------------------------------------------------------------
    def check_teacher(self, ref: str, fingerprint: str, weights_digest: str | None) -> None:
        """Refuse the bank if it was built by another teacher card or other weights."""
        t = self.manifest.teacher
        problems = []
        if ref != t.ref:
            problems.append(f"teacher ref '{t.ref}' in the bank, '{ref}' asked for")
        if fingerprint != t.fingerprint:
            problems.append(
                f"teacher card fingerprint {t.fingerprint[:12]} in the bank, {fingerprint[:12]} now"
            )
        if weights_digest is not None and weights_digest != t.weights_digest:
            problems.append(
                f"teacher weights digest {t.weights_digest[:12]} in the bank, {weights_digest[:12]} now "
                "(the weights changed)"
            )
        if problems:
            raise StaleBankError(
                f"stale bank {self.folder}: {'; '.join(problems)}; delete the folder to rebuild it"
            )

    def check_split(self, split: Any) -> None:
        """Refuse the bank unless ``split`` has the fingerprint it was built for; name the difference."""
        from fusion_aft.data.fingerprint import dataset_fingerprint

        if dataset_fingerprint(split) == self.manifest.dataset.fingerprint:
            return
        raise StaleBankError(
            f"stale bank {self.folder} for split '{split.name}': {self.describe_difference(split)}; "
            "extract features for this version of the data (or delete the folder)"
        )

    def describe_difference(self, split: Any) -> str:
        """A short human description of how ``split`` differs from the rows of this bank."""
        from fusion_aft.data.fingerprint import record_digests

        theirs = split.ids
        ours = self.ids
        if len(theirs) != len(ours):
            return f"the bank has {len(ours)} rows, the split has {len(theirs)}"
        if theirs != ours:
            if set(theirs) == set(ours):
                pos = next(i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b)
                return (
                    f"same records in a different order (shuffled): row {pos} is '{ours[pos]}' in the bank "
                    f"but '{theirs[pos]}' in the split"
                )
            ours_set, theirs_set = set(ours), set(theirs)
            only_split = [i for i in theirs if i not in ours_set][:3]
            only_bank = [i for i in ours if i not in theirs_set][:3]
            return f"different ids: only in the split {only_split}, only in the bank {only_bank}"
        changed = np.flatnonzero(np.asarray(self.digests()) != record_digests(split))
        if len(changed):
            names = [ours[i] for i in changed[:3]]
            return f"{len(changed)} record(s) changed since the bank was built, e.g. {names}"
        return (
            f"dataset fingerprint {self.manifest.dataset.fingerprint[:12]} in the bank differs from "
            "the split's (built by another fusion-aft version)"
        )


@dataclass
class VerifyReport:
    """The result of :func:`verify_bank`: ``ok`` and the problems found."""

    folder: Path
    ok: bool
    problems: list[str]
    rows_done: int = 0
    rows: int = 0
    complete: bool = False


def verify_bank(folder: str | Path) -> VerifyReport:
    """Check a bank fully: manifest, file shapes and sizes, ids/digests hashes, every chunk checksum."""
    folder = Path(folder)
    try:
        manifest = read_manifest(folder)
    except CorruptBankError as exc:
        return VerifyReport(folder, False, [str(exc)])
    bank = TeacherBank(folder, manifest)
    problems = bank._file_problems()
    report = VerifyReport(folder, False, problems, manifest.rows_done, manifest.shape[0], manifest.complete)
    for name, expected in ((IDS, manifest.ids_sha256), (DIGESTS, manifest.digests_sha256)):
        path = folder / name
        if path.is_file() and file_sha256(path) != expected:
            problems.append(f"{name} does not match its checksum in the manifest")
    if problems:
        return report
    feats = bank.features
    for chunk in manifest.chunks:
        if chunk_sha256(feats[chunk.start : chunk.stop]) != chunk.sha256:
            problems.append(f"rows {chunk.start}..{chunk.stop - 1} do not match their checksum")
    if manifest.stats is not None:
        stored = np.asarray(manifest.stats.mean)
        if not np.isfinite(stored).all():
            problems.append("the stored feature means are not finite")
    if not manifest.complete:
        problems.append(f"incomplete: {manifest.rows_done} of {manifest.shape[0]} rows (resume to finish)")
    bank.close()
    report.ok = not problems
    return report


def find_banks(cache_dir: str | Path | None = None) -> list[tuple[Path, BankManifest | None, str]]:
    """Every bank folder under ``cache_dir``: ``(folder, manifest or None, problem)``."""
    root = resolve_cache_dir(cache_dir)
    out: list[tuple[Path, BankManifest | None, str]] = []
    if not root.is_dir():
        return out
    for manifest_path in sorted(root.glob(f"*/*/{MANIFEST}")):
        folder = manifest_path.parent
        try:
            out.append((folder, read_manifest(folder), ""))
        except CorruptBankError as exc:
            out.append((folder, None, str(exc)))
    return out
