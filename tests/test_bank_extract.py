"""Feature extraction with real packaged teachers: joint rows, resume after SIGKILL, staleness, locks."""

from __future__ import annotations

import json
import os
import random
import threading

import numpy as np
import pytest
import torch
from filelock import FileLock

import fusion_aft
from fusion_aft.bank import BankLockedError, JointBank, NonFiniteFeaturesError, TeacherBank, verify_bank
from fusion_aft.bank.manifest import read_manifest, write_manifest
from fusion_aft.bank.store import bank_folder
from fusion_aft.cli import main
from fusion_aft.data import Dataset, Split, load
from fusion_aft.data.fingerprint import dataset_fingerprint
from fusion_aft.errors import StaleBankError, UserInputError

pytestmark = pytest.mark.xdist_group("bank_teachers")


@pytest.fixture(scope="module")
def glove():
    return fusion_aft.teachers.load("glove-6b-50d")


@pytest.fixture(scope="module")
def minilm():
    return fusion_aft.teachers.load("all-minilm-l6-v2")


@pytest.fixture(scope="module")
def reviews() -> Dataset:
    return load("rotten_tomatoes", train_size=96, test_size=40)


def _texts(texts: list[str], ids: list[str] | None = None, name: str = "train") -> Split:
    return Split(
        name, ids or [f"t{i}" for i in range(len(texts))], [0] * len(texts), lambda i: {"text": texts[i]}
    )


def test_joint_rows_equal_each_teachers_own_features(tmp_path, glove, minilm, reviews) -> None:
    bank = fusion_aft.extract(
        [glove, minilm], reviews, "train", tmp_path, batch_size=16, dtype="fp32", progress=False
    )
    assert list(bank.dims.items()) == [("glove-6b-50d", 50), ("all-minilm-l6-v2", 384)]
    assert bank.slices["all-minilm-l6-v2"] == slice(50, 434) and bank.dim == 434
    split = reviews.split("train")
    assert bank.ids == split.ids and len(bank) == 96
    pick = random.Random(5).sample(range(len(split)), 12)
    ids = [split.ids[i] for i in pick]
    rows = bank.rows(ids)
    assert rows.dtype == np.float32 and rows.shape == (12, 434)
    records = [split[i] for i in pick]
    for teacher in (glove, minilm):
        direct = teacher.encode(records).numpy()
        np.testing.assert_allclose(rows[:, bank.slices[teacher.spec.ref]], direct, rtol=1e-4, atol=2e-5)
    assert torch.equal(bank.tensor(ids[:3]), torch.from_numpy(rows[:3]))
    feats = np.load(bank.banks[0].folder / "features.npy")
    np.testing.assert_allclose(
        bank.mean["glove-6b-50d"], feats.astype(np.float64).mean(0), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        bank.std["glove-6b-50d"], feats.astype(np.float64).std(0), rtol=1e-4, atol=1e-6
    )


def test_fp16_bank_reused_not_recomputed(tmp_path, glove, reviews) -> None:
    first = fusion_aft.extract(glove, reviews, "test", tmp_path, batch_size=8, progress=False)
    folder = first.banks[0].folder
    stamp = (folder / "features.npy").stat().st_mtime_ns, read_manifest(folder).updated
    again = fusion_aft.extract(["glove-6b-50d"], reviews, "test", tmp_path, batch_size=8, progress=False)
    assert again.banks[0].folder == folder
    assert ((folder / "features.npy").stat().st_mtime_ns, read_manifest(folder).updated) == stamp
    assert np.load(folder / "features.npy").dtype == np.float16
    m = read_manifest(folder)
    assert m.complete and m.dataset.rows == 40 and m.teacher.weights_digest and m.versions["torch"]
    assert [c.stop for c in m.chunks] == [40]


# a run killed at any point and resumed: test_reliability_faults.py (ten kill points, one fork each)


def test_stale_bank_refused_for_shuffled_or_edited_data(tmp_path, glove) -> None:
    texts = [f"a film about number {i}" for i in range(30)]
    split = _texts(texts)
    bank = fusion_aft.extract(glove, Dataset("mine", {"train": split}, ["x"], ("text",)), split, tmp_path,
                              batch_size=8, progress=False)  # fmt: skip
    folder = bank.banks[0].folder
    shuffled = split.subset(list(range(29, -1, -1)))
    with pytest.raises(StaleBankError, match="shuffled"):
        JointBank.open([folder], split=shuffled)
    edited = list(texts)
    edited[7] = "a completely different film"
    with pytest.raises(StaleBankError, match=r"1 record\(s\) changed.*'t7'"):
        TeacherBank.open(folder).check_split(_texts(edited))
    with pytest.raises(StaleBankError, match="only in the split"):
        bank.check(_texts(texts, ids=[f"u{i}" for i in range(30)]))
    bank.check(_texts(list(texts)))  # the same data is accepted

    manifest = read_manifest(folder)
    manifest.teacher.weights_digest = "0" * 64
    write_manifest(folder, manifest)
    with pytest.raises(StaleBankError, match="weights changed"):
        fusion_aft.extract(glove, "mine", split, tmp_path, batch_size=8, progress=False)


def test_nan_features_name_teacher_and_row_and_keep_finished_chunks(tmp_path) -> None:
    name = f"nan-probe-{os.getpid()}"

    @fusion_aft.register_teacher(name, inputs="text", width=3, replace=True)
    def probe(texts):
        return torch.tensor([[float("nan") if "POISON" in t else len(t), 1.0, 2.0] for t in texts])

    texts = [f"row {i}" for i in range(40)]
    texts[35] = "POISON here"
    split = _texts(texts)
    with pytest.raises(NonFiniteFeaturesError, match=rf"'{name}'.*record 't35' \(row 35\)"):
        fusion_aft.extract(name, Dataset("p", {"train": split}, ["x"], ("text",)), split, tmp_path,
                           batch_size=4, chunk_rows=8, progress=False)  # fmt: skip
    folder = next(tmp_path.glob("*/*/manifest.json")).parent
    m = read_manifest(folder)
    assert m.rows_done == 32 and not m.complete
    report = verify_bank(folder)
    assert report.problems == ["incomplete: 32 of 40 rows (resume to finish)"]
    big = fusion_aft.register_teacher(f"huge-{os.getpid()}", inputs="text", width=1, replace=True)(
        lambda texts: torch.full((len(texts), 1), 1e6)
    )
    del big
    with pytest.raises(NonFiniteFeaturesError, match="fp32"):
        fusion_aft.extract(f"huge-{os.getpid()}", Dataset("p", {"train": split}, ["x"], ("text",)), split,
                           tmp_path, progress=False)  # fmt: skip


def test_second_writer_waits_or_gets_a_clear_error(tmp_path, glove, reviews) -> None:
    """While another writer holds a bank's lock: a one-line error with a timeout (nothing written),
    else a wait, after which the bank is written once."""
    split = reviews.split("test")
    folder = bank_folder(
        tmp_path, "rotten_tomatoes", "test", dataset_fingerprint(split), "glove-6b-50d",
        glove.spec.fingerprint(), "float16",
    )  # fmt: skip
    folder.mkdir(parents=True)
    held, release = threading.Event(), threading.Event()

    def other_writer() -> None:
        with FileLock(str(folder / ".lock")):
            held.set()
            release.wait(60)

    other = threading.Thread(target=other_writer)
    other.start()
    try:
        assert held.wait(30)
        for timeout in (0, 0.2):
            with pytest.raises(BankLockedError, match=r"written by another process.*wait for it") as err:
                fusion_aft.extract(glove, reviews, "test", tmp_path, batch_size=8, progress=False,
                                   lock_timeout=timeout)  # fmt: skip
            assert "\n" not in str(err.value)
        assert not (folder / "manifest.json").exists()
        timer = threading.Timer(0.5, release.set)
        timer.start()
        waited = fusion_aft.extract(glove, reviews, "test", tmp_path, batch_size=8, progress=False)
        timer.join()
    finally:
        release.set()
        other.join()
    assert waited.banks[0].folder == folder and read_manifest(folder).complete


def test_modality_mismatch_and_bad_arguments(tmp_path, glove) -> None:
    images = load("fashion_mnist", train_size=20, test_size=20)
    with pytest.raises(UserInputError, match="reads text but records.*only \\['image'\\]"):
        fusion_aft.extract(glove, images, "train", tmp_path, progress=False)
    with pytest.raises(UserInputError, match="fp16 or fp32"):
        fusion_aft.extract(glove, images, "train", tmp_path, dtype="bf16", progress=False)
    with pytest.raises(UserInputError, match="multiple of the batch size"):
        fusion_aft.extract(glove, "rotten_tomatoes", "test", tmp_path, batch_size=8, chunk_rows=12,
                           progress=False, dataset_options={"test_size": 20})  # fmt: skip


def test_cli_extract_dry_run_then_extract_json(tmp_path, capsys) -> None:
    args = ["extract", "-d", "rotten_tomatoes", "--dataset-option", "test_size=24", "--split", "test",
            "-t", "glove-6b-50d"]  # fmt: skip
    args += ["--cache-dir", str(tmp_path), "--batch-size", "8", "--json"]
    assert main([*args, "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan[0]["rows"] == 24 and plan[0]["width"] == 50 and plan[0]["bytes"] == 24 * 50 * 2
    assert plan[0]["rows_done"] == 0 and plan[0]["estimate_s"] >= 0
    assert not list(tmp_path.glob("*/*/manifest.json"))  # a dry run writes nothing
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dim"] == 50 and out["banks"][0]["rows"] == 24
    assert main([*args, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["rows_done"] == 24
