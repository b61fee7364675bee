"""Batches prepared in a background thread: same batches, same order, same trained weights."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from safetensors.torch import load_file
from test_train_resume import KW as RESUME_RUN

from fusion_aft.prefetch import Prefetcher
from fusion_aft.training import train


def _prefetch_threads() -> int:
    return sum(t.name == "fusion-aft-prefetch" for t in threading.enumerate())


def _wait_for_no_threads(timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while _prefetch_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _prefetch_threads()


def test_yields_every_item_once_in_order():
    for depth in (1, 2, 5):
        assert list(Prefetcher(range(50), depth)) == list(range(50))
    assert list(Prefetcher([], 2)) == []
    assert _wait_for_no_threads() == 0


def test_error_in_the_source_is_raised_where_it_happened():
    def source():
        yield from range(3)
        raise OSError("disk gone at item 3")

    seen = []
    with pytest.raises(OSError, match="disk gone at item 3"):
        for item in Prefetcher(source(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2]
    assert _wait_for_no_threads() == 0


def test_leaving_early_stops_the_thread_and_the_source():
    produced = []

    def source():
        for i in range(10_000):
            produced.append(i)
            yield i

    it = iter(Prefetcher(source(), depth=3))
    assert [next(it) for _ in range(4)] == [0, 1, 2, 3]
    it.close()
    assert _wait_for_no_threads() == 0
    assert len(produced) <= 4 + 3 + 1  # at most `depth` items (and the one in hand) ahead


def test_depth_below_one_is_refused():
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(range(3), depth=0)


# the tiny AFT run of the resume tests, with its own seed and length
KW = {**RESUME_RUN, "seed": 3, "steps": 10}


def test_training_with_and_without_prefetch_gives_identical_weights(tmp_path):
    """Dropout draws from the global RNG in the training thread; collation in the background
    thread must not draw from it, or the runs would differ."""
    ahead = train(**KW, prefetch=2, out=tmp_path / "ahead")
    inline = train(**KW, prefetch=0, out=tmp_path / "inline")
    assert ahead.test_accuracy == inline.test_accuracy
    assert [r.get("loss") for r in ahead.history] == [r.get("loss") for r in inline.history]
    for rel in ("student/student.safetensors", "objective.safetensors"):
        a, b = load_file(ahead.run_dir / rel), load_file(inline.run_dir / rel)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _wait_for_no_threads() == 0
