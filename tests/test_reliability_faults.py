"""Faults survived: extraction killed (SIGKILL) at random points and resumed gives a byte-identical
bank; a full disk mid-extraction keeps the finished chunks and resumes; two writers of one bank
at once; training killed and resumed gives identical weights; a crash between writing a temp file
and renaming it leaves the previous manifest, checkpoint or JSON file valid.

Killed runs are forked children (the parent's loaded teacher is inherited, so ten kills cost
well under a second each) that send themselves SIGKILL from a hook at a randomly drawn point:
inside a teacher forward pass, after a chunk's rows are written but before its manifest, or
between the manifest's temp file and its rename.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import random
import signal
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import fusion_aft
from fusion_aft import fileio
from fusion_aft.bank import TeacherBank, verify_bank
from fusion_aft.bank import manifest as manifest_module
from fusion_aft.bank.manifest import read_manifest
from fusion_aft.errors import UserInputError
from fusion_aft.training import checkpoint as ckpt
from fusion_aft.training import train

pytestmark = pytest.mark.xdist_group("reliability_faults")

writer_module = importlib.import_module("fusion_aft.bank.writer")

ROWS, BATCH, CHUNK = 300, 16, 32
BANK_FILES = ("features.npy", "ids.npy", "digests.npy")


@pytest.fixture(scope="module")
def glove() -> Any:
    return fusion_aft.teachers.load("glove-6b-50d")


@pytest.fixture(scope="module")
def reviews() -> Any:
    return fusion_aft.datasets.load("rotten_tomatoes", train_size=ROWS, test_size=20)


def _extract(glove: Any, reviews: Any, cache: Path) -> Any:
    return fusion_aft.extract(
        [glove], reviews, "train", cache_dir=cache, batch_size=BATCH, chunk_rows=CHUNK,
        num_workers=0, progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def reference(glove, reviews, tmp_path_factory) -> Path:
    """The bank of one uninterrupted extraction."""
    return _extract(glove, reviews, tmp_path_factory.mktemp("ref")).banks[0].folder


def _same_bank(a: Path, b: Path) -> None:
    for name in BANK_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"
    ma, mb = read_manifest(a).model_dump(), read_manifest(b).model_dump()
    for m in (ma, mb):
        m.pop("created"), m.pop("updated"), m.pop("extract_seconds")
    assert ma == mb


def _in_child(work: Callable[[], None]) -> int:
    """Run ``work`` in a forked child; returns the signal that killed it (0 if it exited cleanly)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            work()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status)
    assert os.WEXITSTATUS(status) == 0, "the child failed without being killed"
    return 0


def _kill_at(kind: str, n: int, monkeypatch: pytest.MonkeyPatch, glove: Any) -> None:
    """In the child: SIGKILL self at the ``n``-th event of ``kind``."""
    count = [0]

    def tick() -> None:
        count[0] += 1
        if count[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)

    if kind == "forward":
        real = glove.forward_batch

        def forward(batch: Any) -> torch.Tensor:
            out = real(batch)
            tick()
            return out

        monkeypatch.setattr(glove, "forward_batch", forward)
    elif kind == "before-manifest":  # rows flushed into features.npy, manifest not yet replaced
        real_write = writer_module.write_manifest

        def write(folder: Path, manifest: Any) -> None:
            if manifest.rows_done:
                tick()
            real_write(folder, manifest)

        monkeypatch.setattr(writer_module, "write_manifest", write)
    elif kind == "manifest-rename":  # temp manifest written and fsynced, rename not done
        real_replace = os.replace

        def replace(src: Any, dst: Any) -> None:
            if str(dst).endswith("manifest.json"):
                tick()
            real_replace(src, dst)

        monkeypatch.setattr(fileio.os, "replace", replace)
    else:
        raise AssertionError(kind)


def test_extraction_killed_at_ten_random_points_resumes_byte_identical(
    glove, reviews, reference, tmp_path, monkeypatch
) -> None:
    rng = random.Random(20240607)
    cache = tmp_path / "cache"
    folder = None
    kills = []
    for _ in range(10):
        done = 0
        if folder is not None and (folder / "manifest.json").exists():
            done = read_manifest(folder).rows_done
        left_batches = -(-(ROWS - done) // BATCH)
        left_chunks = -(-(ROWS - done) // CHUNK)
        kind = rng.choice(["forward", "before-manifest", "manifest-rename"])
        n = rng.randint(1, left_batches if kind == "forward" else left_chunks)

        def work(kind: str = kind, n: int = n) -> None:
            with pytest.MonkeyPatch.context() as mp:
                _kill_at(kind, n, mp, glove)
                _extract(glove, reviews, cache)

        sig = _in_child(work)
        kills.append((kind, n, done))
        assert sig == signal.SIGKILL, f"no kill at {kind} #{n} after row {done}"
        folder = next(cache.glob("*/*"))
        if (folder / "manifest.json").exists():
            state = read_manifest(folder)  # always a valid manifest: old or new, never half
            assert not state.complete and state.rows_done % CHUNK == 0
    assert read_manifest(folder).rows_done > 0, kills
    bank = _extract(glove, reviews, cache)
    assert bank.banks[0].folder == folder
    _same_bank(reference, folder)
    assert verify_bank(folder).ok
    assert not list(folder.glob(".*.tmp")), "temp files of killed writers are left behind"


def test_full_disk_mid_extraction_keeps_finished_chunks_and_resumes(
    glove, reviews, reference, tmp_path, monkeypatch
) -> None:
    cache = tmp_path / "cache"
    real_write = writer_module.write_manifest
    calls = [0]

    def write(folder: Path, manifest: Any) -> None:
        calls[0] += 1
        if calls[0] == 5:  # the creation write, then three chunks, then the disk fills up
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "manifest.json"))
        real_write(folder, manifest)

    monkeypatch.setattr(writer_module, "write_manifest", write)
    with pytest.raises(UserInputError) as info:
        _extract(glove, reviews, cache)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("the disk is full: cannot write the feature bank")
    assert "finished rows 0..95 are kept" in message and "--cache-dir" in message
    folder = next(cache.glob("*/*"))
    assert read_manifest(folder).rows_done == 3 * CHUNK
    assert not list(folder.glob(".*.tmp"))

    monkeypatch.setattr(writer_module, "write_manifest", real_write)
    _extract(glove, reviews, cache)
    _same_bank(reference, folder)


def test_full_disk_when_reserving_the_feature_file_leaves_nothing(
    glove, reviews, tmp_path, monkeypatch
) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer_module.os, "posix_fallocate", no_space)
    with pytest.raises(UserInputError, match=r"^the disk is full: cannot write the feature bank"):
        _extract(glove, reviews, tmp_path / "cache")
    assert list((tmp_path / "cache").glob("*/*")) == []


def test_two_extractions_of_one_bank_at_once(glove, reviews, reference, tmp_path) -> None:
    """Two processes start the same extraction together: one writes, the other waits and reuses."""
    cache = tmp_path / "cache"
    go_r, go_w = os.pipe()
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(go_w)
                os.read(go_r, 1)
                _extract(glove, reviews, cache)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(go_r)
    os.write(go_w, b"xx")
    os.close(go_w)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    (folder,) = list(cache.glob("*/*"))
    _same_bank(reference, folder)
    assert verify_bank(folder).ok


# -- atomic writes: a crash between the temp file and the rename ----------------------------------
class Crash(RuntimeError):
    pass


def _crash_on_replace(monkeypatch: pytest.MonkeyPatch, module: Any, suffix: str) -> None:
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        if str(dst).endswith(suffix):
            assert Path(src).exists()  # the temp file is complete at this point
            raise Crash(f"crash before renaming onto {dst}")
        real(src, dst)

    monkeypatch.setattr(module.os, "replace", replace)


def test_crash_while_replacing_a_manifest_keeps_the_previous_one(
    glove, reviews, tmp_path, monkeypatch
) -> None:
    folder = _extract(glove, reviews, tmp_path / "cache").banks[0].folder
    before = (folder / "manifest.json").read_bytes()
    manifest = read_manifest(folder)
    manifest.versions["note"] = "an update that never lands"
    _crash_on_replace(monkeypatch, fileio, "manifest.json")
    with pytest.raises(Crash):
        manifest_module.write_manifest(folder, manifest)
    monkeypatch.undo()
    assert (folder / "manifest.json").read_bytes() == before
    assert TeacherBank.open(folder).rows == ROWS
    assert verify_bank(folder).ok
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == [".lock"]


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch) -> None:
    root = tmp_path / "checkpoint"
    student, objective = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    ckpt.save_checkpoint(root, 1, student, objective, {"rng": ckpt.rng_state()})
    saved = {k: v.clone() for k, v in student.state_dict().items()}
    with torch.no_grad():
        student.weight.add_(1.0)
    for target in ("step-00000002", "latest"):  # the folder rename, then the pointer rename
        _crash_on_replace(monkeypatch, fileio, target)
        with pytest.raises(Crash):
            ckpt.save_checkpoint(root, 2, student, objective, {"rng": ckpt.rng_state()})
        monkeypatch.undo()
        found = ckpt.latest(root)
        fresh = torch.nn.Linear(3, 2)
        loaded = ckpt.load_checkpoint(found, fresh, torch.nn.Linear(2, 1))
        if target == "step-00000002":
            assert found.name == "step-00000001" and loaded.step == 1
            assert all(torch.equal(fresh.state_dict()[k], saved[k]) for k in saved)
            assert not list(root.glob(".step-*.tmp"))
    assert (root / "latest").read_text().strip() == "step-00000001"


def test_crash_while_writing_run_json_keeps_the_previous_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "result.json"
    fileio.atomic_write_json(path, {"test_accuracy": 0.5})
    _crash_on_replace(monkeypatch, fileio, "result.json")
    with pytest.raises(Crash):
        fileio.atomic_write_json(path, {"test_accuracy": 0.9})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"test_accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


# -- training killed and resumed ------------------------------------------------------------------
TRAIN_KW = dict(
    dataset="rotten_tomatoes",
    dataset_options={"train_size": 96, "test_size": 32},
    student="text_bow",
    student_options={"emb_dim": 16, "hidden": 16, "max_length": 24},
    teachers=["glove-6b-50d"],
    method="aft",
    beta=1.0,
    seed=3,
    n_labels=40,
    batch_size=8,
    steps=15,
    checkpoint_every=2,
    log_every=1,
    progress=False,
)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    out = {}
    for rel in ("student/student.safetensors", "objective.safetensors"):
        out.update({f"{rel}:{k}": v for k, v in load_file(run / rel).items()})
    return out


def test_training_killed_at_random_steps_resumes_identically(tmp_path) -> None:
    reference = train(**TRAIN_KW, out=tmp_path / "ref")
    out = tmp_path / "killed"
    rng = random.Random(11)
    points = sorted(rng.sample(range(2, 15), 2))
    for at in points:

        def work(at: int = at) -> None:
            def kill(event: str, info: dict) -> None:
                if event == "step" and info["done"] == at:
                    os.kill(os.getpid(), signal.SIGKILL)

            train(**TRAIN_KW, out=out, resume=True, callbacks=[kill])

        assert _in_child(work) == signal.SIGKILL
        assert ckpt.latest(out / "checkpoint") is not None
        assert not (out / "result.json").exists()
    resumed = train(**TRAIN_KW, out=out, resume=True)
    assert resumed.summary["resumed_from_step"] == points[-1] - points[-1] % 2
    assert resumed.test_accuracy == reference.test_accuracy
    a, b = _weights(reference.run_dir), _weights(out)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert np.isfinite(resumed.test_accuracy)
