"""The JSON manifest of one teacher bank, validated by pydantic and written atomically.

A manifest records what the features are (teacher card, weights digest, preprocessing), what
they are of (dataset name, split, fingerprint, row count), how they are stored (dtype, shape,
batch and chunk size), how far extraction got (rows done, one sha256 per finished chunk), and,
once complete, per-feature mean and std. It is rewritten after every chunk with write-to-temp,
fsync and ``os.replace``, so a crash leaves either the old or the new manifest, never a mix.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fusion_aft.errors import UserInputError
from fusion_aft.fileio import atomic_write_bytes
from fusion_aft.versions import library_versions

__all__ = [
    "FORMAT_VERSION",
    "BankManifest",
    "ChunkInfo",
    "CorruptBankError",
    "DatasetInfo",
    "FeatureStats",
    "TeacherInfo",
    "library_versions",
    "now",
    "read_manifest",
    "write_manifest",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class CorruptBankError(UserInputError):
    """A bank's files do not match its manifest (truncated, edited, or a bad manifest)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeacherInfo(_Model):
    """Which teacher produced the features."""

    name: str
    ref: str
    fingerprint: str
    weights_digest: str
    width: int = Field(gt=0)
    inputs: str
    card: dict[str, Any] = Field(default_factory=dict)
    preprocessing: dict[str, Any] | None = None


class DatasetInfo(_Model):
    """Which rows the features are of."""

    name: str
    split: str
    fingerprint: str
    rows: int = Field(gt=0)


class ChunkInfo(_Model):
    """Rows ``[start, stop)`` are on disk; ``sha256`` is of their bytes in the feature file."""

    start: int = Field(ge=0)
    stop: int = Field(gt=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class FeatureStats(_Model):
    """Per-feature mean and (population) std of the stored values, in float64 arithmetic."""

    mean: list[float]
    std: list[float]


class BankManifest(_Model):
    """Everything known about one (teacher, dataset, split) bank; see the module docstring."""

    format_version: int = FORMAT_VERSION
    teacher: TeacherInfo
    dataset: DatasetInfo
    dtype: Literal["float16", "float32"]
    shape: tuple[int, int]
    batch_size: int = Field(gt=0)
    chunk_rows: int = Field(gt=0)
    rows_done: int = Field(ge=0)
    complete: bool = False
    chunks: list[ChunkInfo] = Field(default_factory=list)
    stats: FeatureStats | None = None
    ids_sha256: str
    digests_sha256: str
    device: str = "cpu"
    #: seconds spent extracting: the sum over the runs that wrote chunks (each run adds its own
    #: time up to its last chunk); ``None`` in banks written before it was recorded
    extract_seconds: float | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    created: str
    updated: str

    @model_validator(mode="after")
    def _consistent(self) -> BankManifest:
        rows, width = self.shape
        if rows != self.dataset.rows or width != self.teacher.width:
            raise ValueError(
                f"shape {list(self.shape)} does not match "
                f"{self.dataset.rows} rows × width {self.teacher.width}"
            )
        if self.chunk_rows % self.batch_size:
            raise ValueError(
                f"chunk_rows {self.chunk_rows} is not a multiple of batch_size {self.batch_size}"
            )
        expected = 0
        for chunk in self.chunks:
            if chunk.start != expected or chunk.stop <= chunk.start or chunk.stop > rows:
                raise ValueError(f"chunk [{chunk.start}, {chunk.stop}) does not follow row {expected}")
            if chunk.stop != rows and chunk.stop - chunk.start != self.chunk_rows:
                raise ValueError(f"chunk [{chunk.start}, {chunk.stop}) is not {self.chunk_rows} rows long")
            expected = chunk.stop
        if self.rows_done != expected:
            raise ValueError(f"rows_done {self.rows_done} but the chunks cover {expected} rows")
        if self.complete and (self.rows_done != rows or self.stats is None):
            raise ValueError("marked complete but rows or statistics are missing")
        if self.stats is not None and not (len(self.stats.mean) == len(self.stats.std) == width):
            raise ValueError("statistics do not have one value per feature")
        return self


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_manifest(folder: Path, manifest: BankManifest) -> None:
    manifest.updated = now()
    text = json.dumps(manifest.model_dump(mode="json"), indent=1, sort_keys=False) + "\n"
    atomic_write_bytes(Path(folder) / MANIFEST, text.encode("utf-8"))


def read_manifest(folder: Path) -> BankManifest:
    """The validated manifest of ``folder``; a bad one is a :class:`CorruptBankError`."""
    path = Path(folder) / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptBankError(f"{folder} is not a feature bank: {MANIFEST} is missing") from None
    except (OSError, ValueError) as exc:
        raise CorruptBankError(
            f"bank {folder}: {MANIFEST} is unreadable ({exc}); delete the folder"
        ) from None
    try:
        return BankManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(manifest)"
        raise CorruptBankError(
            f"bank {folder}: invalid {MANIFEST} ({where}: {first['msg']}); delete the folder to rebuild it"
        ) from None
