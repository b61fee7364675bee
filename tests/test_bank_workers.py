"""Extraction starts DataLoader workers only when preparing inputs is a real share of the work."""

from __future__ import annotations

import time

import torch

from fusion_aft.bank.extract import measured_workers
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


def test_cheap_inputs_run_in_the_main_process() -> None:
    assert measured_workers(_split(), _TimedTeacher(0.0, 0.05), 0, 16, cores_workers=1) == 0


def test_costly_inputs_get_workers() -> None:
    assert measured_workers(_split(), _TimedTeacher(0.01, 0.01), 0, 16, cores_workers=3) == 3


def test_no_spare_cores_means_no_workers() -> None:
    assert measured_workers(_split(), _TimedTeacher(0.01, 0.0), 0, 16, cores_workers=0) == 0
