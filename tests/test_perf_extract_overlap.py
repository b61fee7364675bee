"""Extraction overlaps its work with the forward pass, and the bank does not change.

Chunks are stored in a background thread while the next forward runs: the bank stays
byte-identical, a kill while the writer is behind the forward resumes to the same bank, and
errors in either thread keep every finished chunk. Without DataLoader workers, batches are
prepared ahead in another thread when torch leaves a core idle: the same bank as preparing them
inline, the failing record still named, a kill resumes to the same bank, no thread left over."""

from __future__ import annotations

import importlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import fusion_aft
from fusion_aft.bank import verify_bank
from fusion_aft.bank.manifest import read_manifest
from fusion_aft.errors import UserInputError
from fusion_aft.machine import usable_cores

extract_module = importlib.import_module("fusion_aft.bank.extract")  # the package rebinds `extract`
writer_module = importlib.import_module("fusion_aft.bank.writer")

ROWS, BATCH, CHUNK = 200, 8, 32
PREFETCH_THREAD = "fusion-aft-prefetch"


@pytest.fixture(scope="module")
def glove() -> Any:
    return fusion_aft.teachers.load("glove-6b-50d")


@pytest.fixture(scope="module")
def reviews() -> Any:
    return fusion_aft.datasets.load("rotten_tomatoes", train_size=ROWS, test_size=8)


def _extract(teacher: Any, reviews: Any, cache: Path) -> Any:
    return fusion_aft.extract(
        [teacher], reviews, "train", cache_dir=cache, batch_size=BATCH, chunk_rows=CHUNK,
        num_workers=0, progress=False,
    )  # fmt: skip


def _bank_bytes(folder: Path) -> dict[str, bytes]:
    out = {name: (folder / name).read_bytes() for name in ("features.npy", "ids.npy", "digests.npy")}
    manifest = read_manifest(folder).model_dump()
    for key in ("created", "updated", "extract_seconds"):
        manifest.pop(key)
    out["manifest"] = repr(manifest).encode()
    return out


@pytest.fixture(scope="module")
def reference(glove, reviews, tmp_path_factory) -> dict[str, bytes]:
    return _bank_bytes(_extract(glove, reviews, tmp_path_factory.mktemp("ref")).banks[0].folder)


def _slow_chunks(monkeypatch: pytest.MonkeyPatch, seconds: float) -> list[str]:
    """Make each chunk's checksum slow, so the forward runs chunks ahead of the writer; returns the
    names of the threads that computed checksums."""
    real = writer_module.chunk_info
    threads: list[str] = []

    def slow(start: int, stop: int, block: np.ndarray) -> Any:
        threads.append(threading.current_thread().name)
        time.sleep(seconds)
        return real(start, stop, block)

    monkeypatch.setattr(writer_module, "chunk_info", slow)
    return threads


def test_a_writer_behind_the_forward_gives_the_same_bank(glove, reviews, reference, tmp_path, monkeypatch):
    threads = _slow_chunks(monkeypatch, 0.05)
    bank = _extract(glove, reviews, tmp_path)
    assert _bank_bytes(bank.banks[0].folder) == reference
    assert verify_bank(bank.banks[0].folder).ok
    assert threads and threading.main_thread().name not in threads  # the chunks were stored aside


def _killed_at_forward(
    glove: Any, reviews: Any, cache: Path, kill_at: int, patch: Callable[[pytest.MonkeyPatch], Any]
) -> Any:
    """Extract in a forked child (with ``patch`` applied) that is SIGKILLed when forward pass
    number ``kill_at`` starts; returns the manifest the kill left behind."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            with pytest.MonkeyPatch.context() as mp:
                patch(mp)
                real, count = glove.forward_batch, [0]

                def forward(batch: Any, real: Any = real, count: list[int] = count) -> torch.Tensor:
                    count[0] += 1
                    if count[0] == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return real(batch)

                mp.setattr(glove, "forward_batch", forward)
                _extract(glove, reviews, cache)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    state = read_manifest(next(cache.glob("*/*")))
    assert not state.complete and state.rows_done % CHUNK == 0
    return state


def test_killed_while_the_writer_is_behind_resumes_byte_identical(glove, reviews, reference, tmp_path):
    cache = tmp_path / "cache"
    for kill_at in (3, 17):  # forward passes; the writer is then chunks behind (slow checksums)
        state = _killed_at_forward(glove, reviews, cache, kill_at, lambda mp: _slow_chunks(mp, 0.2))
    assert state.rows_done > 0  # the second kill came after a recorded chunk
    bank = _extract(glove, reviews, cache)
    assert _bank_bytes(bank.banks[0].folder) == reference


def test_a_failing_forward_keeps_the_chunks_queued_before_it(
    glove, reviews, reference, tmp_path, monkeypatch
):
    _slow_chunks(monkeypatch, 0.05)
    real, count = glove.forward_batch, [0]

    def forward(batch: Any) -> torch.Tensor:
        count[0] += 1
        if count[0] == 13:  # rows 0..95 went through the forward: chunks 0..63 are full
            raise RuntimeError("device lost")
        return real(batch)

    monkeypatch.setattr(glove, "forward_batch", forward)
    with pytest.raises(RuntimeError, match="device lost"):
        _extract(glove, reviews, tmp_path)
    folder = next(tmp_path.glob("*/*"))
    assert read_manifest(folder).rows_done == 3 * CHUNK  # all three full chunks, though the writer lagged
    monkeypatch.setattr(glove, "forward_batch", real)
    assert _bank_bytes(_extract(glove, reviews, tmp_path).banks[0].folder) == reference


def test_a_writer_error_reaches_the_caller_and_keeps_earlier_chunks(glove, reviews, tmp_path, monkeypatch):
    real = writer_module.write_manifest
    calls = [0]

    def write(folder: Path, manifest: Any) -> None:
        calls[0] += 1
        if calls[0] == 4:  # creation, two chunks, then a failing write in the writer thread
            raise PermissionError(13, "Permission denied", str(folder / "manifest.json"))
        real(folder, manifest)

    monkeypatch.setattr(writer_module, "write_manifest", write)
    with pytest.raises(
        UserInputError, match=r"cannot write the feature bank .*finished rows 0\.\.63 are kept"
    ):
        _extract(glove, reviews, tmp_path)
    assert read_manifest(next(tmp_path.glob("*/*"))).rows_done == 2 * CHUNK
    assert not [t for t in threading.enumerate() if t.name == "fusion-aft-bank-writer"]


# -- batches prepared ahead in a thread (no workers, a core left idle by torch) -----------------
def _record_threads(monkeypatch: pytest.MonkeyPatch, teacher: Any) -> list[str]:
    """Names of the threads that call ``teacher.prepare``."""
    names: list[str] = []
    real = teacher.prepare

    def prepare(record: Any) -> Any:
        names.append(threading.current_thread().name)
        return real(record)

    monkeypatch.setattr(teacher, "prepare", prepare)
    return names


def _spare(monkeypatch: pytest.MonkeyPatch, value: bool) -> None:
    monkeypatch.setattr(extract_module, "spare_core", lambda: value)


def test_batches_prepared_ahead_give_the_same_bank_as_inline(
    glove, reviews, reference, tmp_path, monkeypatch
):
    _spare(monkeypatch, False)
    inline_threads = _record_threads(monkeypatch, glove)
    inline = _bank_bytes(_extract(glove, reviews, tmp_path / "inline").banks[0].folder)
    assert set(inline_threads) == {threading.main_thread().name}

    monkeypatch.undo()
    _spare(monkeypatch, True)
    ahead_threads = _record_threads(monkeypatch, glove)
    ahead = _bank_bytes(_extract(glove, reviews, tmp_path / "ahead").banks[0].folder)
    assert ahead_threads == [PREFETCH_THREAD] * ROWS  # every row was prepared aside
    assert ahead == inline == reference
    assert not [t for t in threading.enumerate() if t.name == PREFETCH_THREAD]


def test_a_record_that_cannot_be_prepared_ahead_is_named_and_earlier_chunks_kept(
    glove, reviews, tmp_path, monkeypatch
):
    _spare(monkeypatch, True)
    bad_id = reviews.split("train").ids[70]  # chunk 2 (rows 64..95) is cut short
    real = glove.prepare

    def prepare(record: Any) -> Any:
        if record.id == bad_id:
            raise ValueError("unreadable text")
        return real(record)

    monkeypatch.setattr(glove, "prepare", prepare)
    with pytest.raises(UserInputError, match=rf"record '{bad_id}'.*unreadable text.*rows 0\.\.63 are kept"):
        _extract(glove, reviews, tmp_path)
    assert read_manifest(next(tmp_path.glob("*/*"))).rows_done == 2 * CHUNK
    assert not [t for t in threading.enumerate() if t.name == PREFETCH_THREAD]


def test_killed_while_batches_are_prepared_ahead_resumes_byte_identical(glove, reviews, reference, tmp_path):
    cache = tmp_path / "cache"
    # after 10 batches (80 rows): chunks 0 and 1 are full
    state = _killed_at_forward(glove, reviews, cache, 11, lambda mp: _spare(mp, True))
    assert state.rows_done > 0
    assert _bank_bytes(_extract(glove, reviews, cache).banks[0].folder) == reference


def test_a_thread_prepares_ahead_only_on_a_core_torch_leaves_idle():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(usable_cores())
        assert extract_module.spare_core() is False
        if usable_cores() >= 2:
            torch.set_num_threads(usable_cores() - 1)
            assert extract_module.spare_core() is True
    finally:
        torch.set_num_threads(before)
