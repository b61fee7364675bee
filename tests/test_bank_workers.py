"""Extraction starts DataLoader workers only when preparing inputs is a real share of the work."""

from __future__ import annotations

import time

import pytest
import torch

from fusion_aft.bank import pipeline
from fusion_aft.bank.pipeline import measured_workers
from fusion_aft.data.records import Split
from fusion_aft.teachers.base import Teacher


class _TimedTeacher(Teacher):
    def __init__(self, prepare_s: float, forward_s: float) -> None:
        self.prepare_s = prepare_s
        self.forward_s = forward_s

    def prepare(self, record):
        time.sleep(self.prepare_s)
        return torch.tensor([float(len(record.text))])

    def forward_batch(self, batch):
        time.sleep(self.forward_s)
        return batch


def _split(n: int = 32) -> Split:
    return Split("train", [f"r{i}" for i in range(n)], [0] * n, lambda i: {"text": "x" * (i + 1)})


@pytest.fixture
def busy_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's threads occupy every core."""
    monkeypatch.setattr(pipeline, "usable_cores", lambda: torch.get_num_threads())


def test_costly_inputs_get_the_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "usable_cores", lambda: torch.get_num_threads() + 2)
    assert measured_workers(_split(), _TimedTeacher(0.01, 0.01), 0, 16, cores_workers=4) == 2


def test_cheap_inputs_run_in_the_main_process_even_with_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Receiving batches from a worker and the parent's copy-on-write faults cost more than a
    prepare that is a few percent of the forward (Lite0 at 64 px: 0.93 with a worker, 0.98
    without)."""
    monkeypatch.setattr(pipeline, "usable_cores", lambda: torch.get_num_threads() + 2)
    assert measured_workers(_split(), _TimedTeacher(0.0, 0.5), 0, 16, cores_workers=4) == 0


@pytest.mark.usefixtures("busy_cores")
def test_cheap_inputs_run_in_the_main_process() -> None:
    # the forward (0.5 s) leaves 50 ms for preparing 8 trivial rows: a margin a loaded machine
    # keeps (with a 50 ms forward the 5 ms left were sometimes used up by scheduling alone)
    assert measured_workers(_split(), _TimedTeacher(0.0, 0.5), 0, 16, cores_workers=1) == 0


@pytest.mark.usefixtures("busy_cores")
def test_costly_inputs_get_workers() -> None:
    assert measured_workers(_split(), _TimedTeacher(0.01, 0.01), 0, 16, cores_workers=3) == 3


def test_no_spare_cores_means_no_workers() -> None:
    assert measured_workers(_split(), _TimedTeacher(0.01, 0.0), 0, 16, cores_workers=0) == 0
