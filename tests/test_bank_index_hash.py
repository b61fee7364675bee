"""The id index's hash table against a plain dict, including adversarial keys and bank reads."""

from __future__ import annotations

import numpy as np
import pytest

import fusion_aft.bank.index as index_module
from fusion_aft.bank import CorruptBankError, JointBank, TeacherBank, UnknownIdsError
from fusion_aft.bank.index import HashTable, IdIndex, hash_ids
from fusion_aft.bank.joint import _float32
from fusion_aft.bank.synthetic import write_synthetic_bank
from fusion_aft.errors import UserInputError


def _brute(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    table = dict(zip(keys.tolist(), values.tolist(), strict=True))
    return np.array([table.get(q, -1) for q in queries.tolist()], dtype=np.int64)


@pytest.mark.parametrize("n", [0, 1, 2, 9, 1000])
def test_hash_table_clustered_keys_equal_a_dict(n: int) -> None:
    """Keys sharing their high 32 bits all have the same home slot: one run of n slots, crossing
    many probe windows; keys equal in their low bits; 0 and 2⁶⁴-1 as keys and as queries."""
    rng = np.random.default_rng(n)
    low = rng.choice(2**20, n, replace=False).astype(np.uint64)
    keys = np.sort(low | np.uint64(7 << 40))
    if n >= 2:
        keys[0], keys[-1] = np.uint64(0), np.uint64(2**64 - 1)
    values = rng.permutation(n)
    table = HashTable(keys, values)
    absent = np.array([1, 2**63, 2**64 - 2], dtype=np.uint64)
    queries = np.concatenate(
        [
            keys,
            keys + np.uint64(2**21),
            (keys << np.uint64(32)) | np.uint64(5),
            absent,
            np.zeros(1, np.uint64),
        ]
    )
    queries = queries[rng.permutation(len(queries))]
    np.testing.assert_array_equal(table.lookup(queries), _brute(keys, values, queries))
    assert table.lookup(np.zeros(0, np.uint64)).shape == (0,)


def test_hash_table_random_keys_several_runs_and_bulk_blocks() -> None:
    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(0, 2**64 - 1, 200_000, dtype=np.uint64, endpoint=True))
    # several dense clusters force runs longer than one window next to sparse regions
    cluster = np.arange(5000, dtype=np.uint64) + np.uint64(2**62)
    keys = np.unique(np.concatenate([keys, cluster]))
    values = rng.permutation(len(keys))
    table = HashTable(keys, values)
    queries = np.concatenate(
        [keys, rng.integers(0, 2**63, 50_000, dtype=np.uint64), cluster + np.uint64(5000)]
    )
    assert len(queries) > HashTable.BLOCK  # the bulk path in several blocks
    np.testing.assert_array_equal(table.lookup(queries), _brute(keys, values, queries))


def _random_ids(rng: np.random.Generator, n: int) -> list[str]:
    alphabet = list("abcXYZ019-_/é日")
    out: set[str] = set()
    while len(out) < n:
        length = int(rng.integers(1, 21))  # across the 8-byte words the hash reads
        out.add("".join(rng.choice(alphabet, length)))
    return sorted(out, key=lambda _: rng.random())


@pytest.mark.parametrize("n", [0, 1, 2, 3000])
def test_id_index_equals_a_dict_with_missing_and_repeated_ids(n: int) -> None:
    rng = np.random.default_rng(n + 10)
    ids = _random_ids(rng, n + 200)
    bank_ids, others = ids[:n], ids[n:]
    index = IdIndex(bank_ids)
    assert len(index) == n and not index.exact
    query = bank_ids + others + bank_ids[:5] + ["", "a" * 40]
    query = [query[i] for i in rng.permutation(len(query))]
    expected = [{k: i for i, k in enumerate(bank_ids)}.get(q, -1) for q in query]
    assert index.lookup(query).tolist() == expected
    assert index.contains(query).tolist() == [e >= 0 for e in expected]
    if n:
        assert index.positions(bank_ids[::-1]).tolist() == list(range(n))[::-1]
    with pytest.raises(UnknownIdsError, match=repr(others[0])):
        index.positions([*bank_ids[:1], others[0]])


def test_hash_ignores_padding_and_reads_every_byte() -> None:
    ids = ["a", "abcdefgh", "abcdefghi", "abcdefgh" * 3 + "x"]
    wide = np.array([s.encode() for s in ids], dtype="S40")
    np.testing.assert_array_equal(hash_ids(ids[:1]), hash_ids(wide[:1]))
    np.testing.assert_array_equal(hash_ids(ids), hash_ids(wide))
    # ids differing only past the first word, or only in length, hash apart
    near = ["abcdefgh1", "abcdefgh2", "abcdefgh", "abcdefgh" + "1" * 9, "abcdefgh" + "1" * 10]
    assert len(set(hash_ids(near).tolist())) == len(near)
    assert len(set(hash_ids([str(i) for i in range(100_000)]).tolist())) == 100_000


def test_hash_collisions_fall_back_to_exact_search(monkeypatch) -> None:
    """Ids whose hashes collide (forced with a hash of the length only) still map exactly."""
    monkeypatch.setattr(
        index_module, "hash_ids", lambda ids: np.char.str_len(index_module.encode_ids(ids)).astype(np.uint64)
    )
    ids = ["aa", "bb", "c", "dddd"]
    index = IdIndex(ids)
    assert index.exact
    assert index.lookup(["bb", "c", "zz", "aa"]).tolist() == [1, 2, -1, 0]
    with pytest.raises(UserInputError, match="duplicate sample id 'bb'"):
        IdIndex(["aa", "bb", "bb"])


def test_joint_bank_rows_equal_the_feature_file(tmp_path) -> None:
    folder = write_synthetic_bank(tmp_path / "bank", 5000, 8, chunk_rows=256)
    bank = JointBank.open([folder])
    features = np.load(folder / "features.npy")
    rng = np.random.default_rng(0)
    picks = np.concatenate([rng.choice(5000, 300, replace=False), [7, 7, 4999, 0, 256, 255]])
    got = bank.rows([str(int(p)) for p in picks])
    np.testing.assert_array_equal(got, features[picks].astype(np.float32))
    with pytest.raises(UnknownIdsError, match="'5000'"):
        bank.rows(["1", "5000"])
    assert bank.rows([]).shape == (0, 8)


def test_checked_rows_refuses_a_damaged_chunk_after_others_were_checked(tmp_path) -> None:
    folder = write_synthetic_bank(tmp_path / "bank", 2048, 4, chunk_rows=256)
    with open(folder / "features.npy", "r+b") as f:  # flip a byte of row 1000 (chunk 3)
        offset = TeacherBank.open(folder).features.offset + 1000 * 8 + 3
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x10]))
    store = TeacherBank.open(folder)
    assert store.checked_rows(np.array([0, 1, 300, 600])).shape == (4, 4)
    assert store._verified.tolist() == [True, True, True] + [False] * 5
    with pytest.raises(CorruptBankError, match=r"rows 768\.\.1023 do not match their checksum"):
        store.checked_rows(np.array([2, 1000, 1500]))
    store.manifest.chunks = store.manifest.chunks[:6]
    with pytest.raises(CorruptBankError, match="row 1536 is beyond its finished chunks"):
        store.checked_rows(np.array([3, 1600, 2000]))


def test_float16_widening_is_exact_for_every_bit_pattern() -> None:
    every = np.arange(65536, dtype=np.uint16).view(np.float16)
    for shape in [(65536, 1), (512, 128), (2, 32768)]:  # one piece, several pieces, a row per piece
        block = every.reshape(shape)
        got = _float32(block)
        assert got.dtype == np.float32 and got.shape == shape
        expected = block.astype(np.float32)
        nan = np.isnan(expected)  # NaN payloads may differ; banks never hold NaN (extraction refuses it)
        np.testing.assert_array_equal(np.isnan(got), nan)
        np.testing.assert_array_equal(got.view(np.uint32)[~nan], expected.view(np.uint32)[~nan])
    readonly = every.reshape(256, 256)
    readonly.flags.writeable = False
    np.testing.assert_array_equal(_float32(readonly[:100]), readonly[:100].astype(np.float32))
    assert _float32(np.ones((2, 2), np.float32)).dtype == np.float32


@pytest.mark.parametrize("width", [3, 384, 20000])
def test_joint_bank_float16_rows_widen_exactly(tmp_path, width: int) -> None:
    rows = 300 if width < 20000 else 40
    folder = write_synthetic_bank(tmp_path / "bank", rows, width, chunk_rows=64)
    features = np.load(folder / "features.npy")
    bank = JointBank.open([folder])
    picks = np.random.default_rng(width).permutation(rows)[:200]
    got = bank.rows([str(int(p)) for p in picks])
    assert got.dtype == np.float32 and got.flags.writeable
    np.testing.assert_array_equal(got.view(np.uint32), features[picks].astype(np.float32).view(np.uint32))


def test_checked_rows_after_every_chunk_was_checked(tmp_path) -> None:
    folder = write_synthetic_bank(tmp_path / "bank", 1000, 4, chunk_rows=128)
    features = np.load(folder / "features.npy")
    store = TeacherBank.open(folder)
    store.checked_rows(np.arange(0, 1000, 128))  # checks every chunk once
    picks = np.array([999, 0, 500, 500, 129])
    np.testing.assert_array_equal(store.checked_rows(picks), features[picks])
    store.manifest.chunks = store.manifest.chunks[:4]  # rows from 512 on are not recorded
    with pytest.raises(CorruptBankError, match="row 512 is beyond its finished chunks"):
        store.checked_rows(np.array([3, 600]))
