"""A bank records the time spent extracting it: the sum over the runs that wrote its chunks.

The benchmark's cost table reads that figure; it once used the manifest's age (last update minus
creation), which counts every pause between a run and its resumption.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

import fusion_aft
from fusion_aft.bank.manifest import read_manifest, write_manifest
from fusion_aft.bench.cell import extraction_entries
from fusion_aft.bench.output import merge_extraction
from fusion_aft.data.records import Split
from fusion_aft.teachers.base import Teacher

extract_module = importlib.import_module("fusion_aft.bank.extract")  # the package rebinds `extract`

ROWS, BATCH, CHUNK = 96, 8, 32  # three chunks


class _Lengths(Teacher):
    """Two features per text (length, spaces); ``fail_at`` makes one forward pass fail."""

    def __init__(self) -> None:
        self.spec = SimpleNamespace(
            name="lengths", ref="lengths", width=2, inputs="text", fingerprint=lambda: "v1"
        )
        self.fail_at: int | None = None
        self.calls = 0

    def prepare(self, record: Any) -> Any:
        return record.text

    def collate(self, items: list[Any]) -> Any:
        return items

    def forward_batch(self, batch: Any) -> torch.Tensor:
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("the forward pass failed")
        return torch.tensor([[len(t), t.count(" ")] for t in batch], dtype=torch.float32)

    def weights_digest(self) -> str:
        return "none"


def _split() -> Split:
    return Split("train", [f"r{i}" for i in range(ROWS)], [0] * ROWS, lambda i: {"text": "a b" * (i + 1)})


class _Clock:
    """A clock that advances one second per reading (only the extraction module reads it)."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


def _extract(teacher: _Lengths, split: Split, cache: Path) -> Any:
    return fusion_aft.extract(
        [teacher], "texts", split, cache_dir=cache, batch_size=BATCH, chunk_rows=CHUNK,
        num_workers=0, progress=False,
    )  # fmt: skip


def test_a_resumed_run_adds_its_own_time_to_the_earlier_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    monkeypatch.setattr(extract_module, "time", clock)
    teacher, split = _Lengths(), _split()
    teacher.fail_at = 6  # in the second chunk (batches 5-8): the first chunk is kept
    with pytest.raises(RuntimeError, match="forward pass failed"):
        _extract(teacher, split, tmp_path)
    (folder,) = [p.parent for p in tmp_path.rglob("manifest.json")]
    first = read_manifest(folder)
    assert first.rows_done == CHUNK
    assert first.extract_seconds == 1.0  # started at 1, first chunk stored at 2
    clock.now = 100.0  # a pause between the runs: not extraction time
    teacher.fail_at = None
    bank = _extract(teacher, split, tmp_path)
    manifest = bank.manifests[next(iter(bank.manifests))]
    assert manifest.complete
    assert manifest.extract_seconds == 1.0 + 2.0  # the second run: started at 101, chunks at 102, 103
    assert np.asarray(bank.banks[0].features[:3], dtype=np.float32).tolist() == [[3, 1], [6, 2], [9, 3]]


def test_the_cost_table_reports_extraction_time_not_the_age_of_the_bank(tmp_path: Path) -> None:
    bank = _extract(_Lengths(), _split(), tmp_path)
    folder = bank.banks[0].folder
    manifest = read_manifest(folder)
    manifest.created = "2000-01-01T00:00:00+00:00"  # resumed years later
    write_manifest(folder, manifest)
    manifest.extract_seconds = 2.5
    write_manifest(folder, manifest)
    reopened = fusion_aft.bank.JointBank([fusion_aft.bank.TeacherBank.open(folder)])
    entries = extraction_entries("texts", "train", reopened, ("lengths",))
    want = {"task": "texts", "teacher": "lengths", "split": "train", "rows": ROWS, "seconds": 2.5}
    assert entries == [want]
    log: dict[str, Any] = {"texts|lengths|train": {"rows": ROWS, "seconds": 900.0}}
    merge_extraction(log, entries)
    assert log["texts|lengths|train"]["seconds"] == 2.5  # the manifest is the record, not the first sighting
