"""Without DataLoader workers, extraction prepares batches in a background thread when torch leaves
a core idle: the bank is byte-identical to preparing inline, the preparing really happens aside,
a record that cannot be prepared is still named with the finished chunks kept, a kill resumes
to the same bank, and no thread outlives the call."""

from __future__ import annotations

import importlib
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

import fusion_aft
from fusion_aft.bank.manifest import read_manifest
from fusion_aft.errors import UserInputError
from fusion_aft.machine import usable_cores

extract_module = importlib.import_module("fusion_aft.bank.extract")  # the package rebinds `extract`

ROWS, BATCH, CHUNK = 120, 8, 32
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


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ("features.npy", "ids.npy", "digests.npy")}


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
    monkeypatch.setattr(extract_module, "_spare_core", lambda: value)


def test_batches_prepared_ahead_give_the_same_bank_as_inline(glove, reviews, tmp_path, monkeypatch):
    _spare(monkeypatch, False)
    inline_threads = _record_threads(monkeypatch, glove)
    inline = _files(_extract(glove, reviews, tmp_path / "inline").banks[0].folder)
    assert set(inline_threads) == {threading.main_thread().name}

    monkeypatch.undo()
    _spare(monkeypatch, True)
    ahead_threads = _record_threads(monkeypatch, glove)
    ahead = _files(_extract(glove, reviews, tmp_path / "ahead").banks[0].folder)
    assert ahead_threads == [PREFETCH_THREAD] * ROWS  # every row was prepared aside
    assert ahead == inline
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


def test_killed_while_batches_are_prepared_ahead_resumes_byte_identical(glove, reviews, tmp_path):
    reference = _files(_extract(glove, reviews, tmp_path / "reference").banks[0].folder)
    cache = tmp_path / "cache"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            with pytest.MonkeyPatch.context() as mp:
                _spare(mp, True)
                real, count = glove.forward_batch, [0]

                def forward(batch: Any, real: Any = real, count: list[int] = count) -> torch.Tensor:
                    count[0] += 1
                    if count[0] == 11:  # after 10 batches (80 rows): chunks 0 and 1 are full
                        os.kill(os.getpid(), signal.SIGKILL)
                    return real(batch)

                mp.setattr(glove, "forward_batch", forward)
                _extract(glove, reviews, cache)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    folder = next(cache.glob("*/*"))
    state = read_manifest(folder)
    assert not state.complete and state.rows_done % CHUNK == 0 and state.rows_done > 0
    assert _files(_extract(glove, reviews, cache).banks[0].folder) == reference


def test_a_thread_prepares_ahead_only_on_a_core_torch_leaves_idle():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(usable_cores())
        assert extract_module._spare_core() is False
        if usable_cores() >= 2:
            torch.set_num_threads(usable_cores() - 1)
            assert extract_module._spare_core() is True
    finally:
        torch.set_num_threads(before)
