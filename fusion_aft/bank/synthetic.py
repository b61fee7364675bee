"""Synthetic banks: valid banks of random features, for benchmarks and tests at any size.

Written through :mod:`fusion_aft.bank.writer` like an extracted bank (same files, same manifest),
chunk by chunk and never held in RAM whole; chunk checksums and per-feature mean/std are real, so
:func:`fusion_aft.bank.verify_bank` accepts it. Row ``i`` has id ``str(i)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fusion_aft.bank.manifest import DatasetInfo, FeatureStats, TeacherInfo, write_manifest
from fusion_aft.bank.store import FEATURES
from fusion_aft.bank.writer import create_bank, store_chunk

__all__ = ["synthetic_ids", "write_synthetic_bank"]

#: bytes of random float32 features generated at a time
_BLOCK_BYTES = 64 * 1024**2


def synthetic_ids(n: int) -> np.ndarray:
    """Ids ``"0" … "n-1"`` (row ``i`` has id ``str(i)``) as a numpy ``S`` array."""
    return np.arange(n).astype(f"S{len(str(max(n - 1, 0)))}")


def write_synthetic_bank(
    folder: Path,
    rows: int,
    width: int,
    ref: str = "synthetic",
    seed: int = 0,
    dtype: str = "float16",
    chunk_rows: int = 1024,
) -> Path:
    """A complete bank folder of ``rows`` × ``width`` standard-normal features drawn with ``seed``."""
    folder = Path(folder)
    chunk_rows = min(chunk_rows, rows)
    teacher = TeacherInfo(
        name=ref,
        ref=ref,
        fingerprint=f"synthetic-{ref}-{seed}",
        weights_digest="none",
        width=width,
        inputs="image",
        card={"name": ref, "synthetic": True},
    )
    dataset = DatasetInfo(name="synthetic", split="train", fingerprint=f"synthetic-{rows}-{seed}", rows=rows)
    batch_size = 64 if chunk_rows % 64 == 0 else chunk_rows
    digests = np.zeros(rows, dtype="<u8")
    ids = synthetic_ids(rows)
    manifest = create_bank(folder, teacher, dataset, ids, digests, dtype, batch_size, chunk_rows)
    features = np.lib.format.open_memmap(folder / FEATURES, mode="r+")
    rng = np.random.default_rng(seed)
    total = np.zeros(width)
    squares = np.zeros(width)
    step = chunk_rows * max(1, _BLOCK_BYTES // (chunk_rows * width * 4))
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        block = rng.standard_normal((stop - start, width), dtype=np.float32).astype(dtype)
        as64 = block.astype(np.float64)
        total += as64.sum(0)
        squares += np.square(as64).sum(0)
        for a in range(start, stop, chunk_rows):
            b = min(stop, a + chunk_rows)
            store_chunk(folder, manifest, features, a, block[a - start : b - start], flush=False, save=False)
    features.flush()
    del features
    mean = total / rows
    std = np.sqrt(np.maximum(squares / rows - mean**2, 0.0))
    manifest.stats = FeatureStats(mean=mean.tolist(), std=std.tolist())
    manifest.complete = True
    write_manifest(folder, manifest)
    return folder
