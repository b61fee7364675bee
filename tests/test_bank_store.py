"""Bank files on disk: verification catches corruption, listing, the id index and the joint view."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import fusion_aft
from fusion_aft.bank import IdIndex, JointBank, TeacherBank, UnknownIdsError, find_banks, verify_bank
from fusion_aft.bank.index import hash_ids
from fusion_aft.bank.manifest import CorruptBankError, read_manifest
from fusion_aft.cli import main
from fusion_aft.data import Dataset, Split


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, JointBank, Split]:
    root = tmp_path_factory.mktemp("banks")
    texts = [
        f"review {i}: {'great' if i % 3 else 'dull'} acting and a {'long' if i % 2 else 'short'} plot"
        for i in range(70)
    ]
    split = Split(
        "train", [f"s{i:03d}" for i in range(70)], [i % 2 for i in range(70)], lambda i: {"text": texts[i]}
    )
    ds = Dataset("reviews", {"train": split}, ["neg", "pos"], ("text",))
    bank = fusion_aft.extract("glove-6b-50d", ds, "train", root, batch_size=8, chunk_rows=16, progress=False)
    return root, bank, split


def _copy(folder: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, dest))


def test_layout_and_manifest_fields(built) -> None:
    root, bank, split = built
    folder = bank.banks[0].folder
    assert folder.parent.parent == root
    assert folder.parent.name.startswith("reviews-train-") and folder.name.startswith("glove-6b-50d-")
    assert {p.name for p in folder.iterdir()} >= {"features.npy", "ids.npy", "digests.npy", "manifest.json"}
    m = read_manifest(folder)
    assert m.shape == (70, 50) and m.dtype == "float16" and m.chunk_rows == 16 and m.batch_size == 8
    assert [(c.start, c.stop) for c in m.chunks] == [(0, 16), (16, 32), (32, 48), (48, 64), (64, 70)]
    assert m.teacher.card["name"] == "glove-6b-50d" and m.teacher.preprocessing is not None
    assert m.dataset.name == "reviews" and len(m.stats.mean) == 50
    assert np.load(folder / "features.npy", mmap_mode="r").shape == (70, 50)


def test_verify_detects_flipped_bytes_truncation_and_bad_manifest(built, tmp_path) -> None:
    folder = built[1].banks[0].folder
    assert verify_bank(folder).ok
    flipped = _copy(folder, tmp_path / "flipped")
    data = bytearray((flipped / "features.npy").read_bytes())
    data[-30] ^= 0xFF  # a byte inside the last chunk
    (flipped / "features.npy").write_bytes(bytes(data))
    report = verify_bank(flipped)
    assert not report.ok and report.problems == ["rows 64..69 do not match their checksum"]

    cut = _copy(folder, tmp_path / "cut")
    raw = (cut / "features.npy").read_bytes()
    (cut / "features.npy").write_bytes(raw[:-100])
    assert any("truncated" in p for p in verify_bank(cut).problems)
    with pytest.raises(CorruptBankError, match="truncated"):
        TeacherBank.open(cut)

    ids = _copy(folder, tmp_path / "ids")
    np.save(ids / "ids.npy", np.array([b"x"] * 70))
    assert "ids.npy does not match its checksum in the manifest" in verify_bank(ids).problems

    bad = _copy(folder, tmp_path / "bad")
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["rows_done"] = 69
    (bad / "manifest.json").write_text(json.dumps(manifest))
    assert "rows_done 69" in verify_bank(bad).problems[0]


def test_resume_redoes_a_chunk_that_fails_its_checksum(built, tmp_path) -> None:
    root, bank, split = built
    folder = bank.banks[0].folder
    copy_root = tmp_path / "root"
    copied = _copy(folder, copy_root / folder.parent.name / folder.name)
    good = (copied / "features.npy").read_bytes()
    manifest = json.loads((copied / "manifest.json").read_text())
    manifest.update(complete=False, stats=None)
    (copied / "manifest.json").write_text(json.dumps(manifest))
    data = bytearray(good)
    data[-30] ^= 0xFF
    (copied / "features.npy").write_bytes(bytes(data))
    ds = Dataset("reviews", {"train": split}, ["neg", "pos"], ("text",))
    fusion_aft.extract("glove-6b-50d", ds, "train", copy_root, batch_size=8, chunk_rows=16, progress=False)
    assert (copied / "features.npy").read_bytes() == good
    assert verify_bank(copied).ok


def test_cli_bank_verify_and_list(built, tmp_path, capsys) -> None:
    root, bank, _ = built
    folder = bank.banks[0].folder
    assert main(["bank", "verify", str(folder)]) == 0
    assert main(["bank", "verify", str(root), "--json"]) == 0
    capsys.readouterr()
    broken = _copy(folder, tmp_path / "r" / "g" / "b")
    with open(broken / "features.npy", "r+b") as f:
        f.truncate(200)
    assert main(["bank", "verify", str(broken)]) == 1
    assert "BAD" in capsys.readouterr().out
    assert main(["bank", "verify", str(tmp_path / "missing")]) == 2
    assert main(["bank", "list", "--cache-dir", str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["dataset"], r["split"], r["teacher"], r["rows"], r["complete"]) for r in rows] == [
        ("reviews", "train", "glove-6b-50d", 70, True)
    ]
    assert len(find_banks(root)) == 1


def test_joint_bank_order_duplicates_unknown_ids_and_pickling(built) -> None:
    _, bank, split = built
    feats = np.load(bank.banks[0].folder / "features.npy").astype(np.float32)
    ids = ["s050", "s003", "s050", "s069", "s000"]
    rows = bank.rows(ids)
    np.testing.assert_array_equal(rows, feats[[50, 3, 50, 69, 0]])
    assert bank.rows([]).shape == (0, 50)
    assert bank.contains(["s001", "nope"]).tolist() == [True, False]
    with pytest.raises(UnknownIdsError, match=r"2 of 3 ids are not in.*\['nope', 'gone'\]"):
        bank.rows(["s001", "nope", "gone"])
    clone = pickle.loads(pickle.dumps(bank))
    np.testing.assert_array_equal(clone.rows(ids), rows)
    assert clone.fingerprints == bank.fingerprints
    reopened = JointBank.open([bank.banks[0].folder], split=split)
    assert reopened.dims == bank.dims and reopened.ids == split.ids
    with pytest.raises(fusion_aft.UserInputError, match="given twice"):
        JointBank([bank.banks[0], bank.banks[0]])


def test_id_index_lookup_collision_fallback_and_width_independence() -> None:
    rng = np.random.default_rng(0)
    ids = [f"img-{v}" for v in rng.permutation(200_000)]
    index = IdIndex(ids)
    query = [ids[5], ids[199_999], "img-x", ids[0]]
    assert index.lookup(query).tolist() == [5, 199_999, -1, 0]
    exact = IdIndex(ids, exact=True)
    assert exact.exact and exact.lookup(query).tolist() == [5, 199_999, -1, 0]
    assert hash_ids(["ab"])[0] == hash_ids(np.array([b"ab", b"abcdefgh"]))[0]  # padding does not matter
    assert hash_ids(["ab"])[0] != hash_ids(["ab\u00e9"])[0]
    assert len(set(hash_ids(ids).tolist())) == len(ids)
    with pytest.raises(fusion_aft.UserInputError, match="duplicate sample id 'a'"):
        IdIndex(["a", "b", "a"], exact=True)


@pytest.mark.slow
def test_id_index_scales_to_ten_million_rows() -> None:
    ids = np.char.add(b"row-", np.arange(10_000_000).astype("S8"))
    index = IdIndex(ids)
    probe = np.random.default_rng(1).integers(0, 10_000_000, 1000)
    assert np.array_equal(index.lookup(ids[probe]), probe)
