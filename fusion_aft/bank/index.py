"""Sample id → row lookup that scales to 10⁷ rows: sorted 64-bit id hashes + ``searchsorted``.

Ids are stored as fixed-width UTF-8 bytes (numpy ``S`` arrays). They are hashed with a vectorised
FNV-1a over their bytes plus a splitmix64 finaliser (no Python loop over rows), sorted once, and
looked up with ``np.searchsorted``. Memory: 16 bytes per row. If two ids ever share a hash (odds
about n²/2⁶⁵), the index falls back to exact search over the sorted ids themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fusion_aft.errors import UserInputError

__all__ = ["IdIndex", "UnknownIdsError", "encode_ids", "hash_ids"]

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


class UnknownIdsError(UserInputError, KeyError):
    """Ids asked for that a bank does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def encode_ids(ids: Iterable[str] | np.ndarray) -> np.ndarray:
    """Ids as a numpy ``S`` array of UTF-8 bytes (already-encoded arrays pass through)."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind == "S":
        return ids
    encoded = [s.encode("utf-8") for s in ids]
    if not encoded:
        return np.zeros(0, dtype="S1")
    return np.array(encoded, dtype=f"S{max(1, max(len(e) for e in encoded))}")


def hash_ids(ids: Iterable[str] | np.ndarray) -> np.ndarray:
    """``uint64`` hash per id, independent of the array's padding width."""
    arr = encode_ids(ids)
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    width = arr.dtype.itemsize
    as_bytes = arr.view(np.uint8).reshape(n, width)
    lengths = np.char.str_len(arr)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for col in range(width):
            live = lengths > col
            if not live.any():
                break
            mixed = (h ^ as_bytes[:, col].astype(np.uint64)) * _FNV_PRIME
            h = np.where(live, mixed, h)
        h ^= lengths.astype(np.uint64)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


class IdIndex:
    """Maps ids to their row in one ordering of ids (a bank's ``ids.npy``)."""

    def __init__(self, ids: Sequence[str] | np.ndarray, exact: bool = False) -> None:
        arr = encode_ids(ids)
        self.size = len(arr)
        self.exact = exact
        if not exact:
            hashes = hash_ids(arr)
            order = np.argsort(hashes, kind="stable")
            self._keys = hashes[order]
            if self.size > 1 and bool((self._keys[1:] == self._keys[:-1]).any()):
                self.exact = True
        if self.exact:
            order = np.argsort(arr, kind="stable")
            self._keys = arr[order]
            if self.size > 1 and bool((self._keys[1:] == self._keys[:-1]).any()):
                dup = self._keys[1:][self._keys[1:] == self._keys[:-1]][0].decode()
                raise UserInputError(f"duplicate sample id '{dup}' in a bank's ids")
        self._rows = order.astype(np.int64)

    def __len__(self) -> int:
        return self.size

    def lookup(self, ids: Iterable[str] | np.ndarray) -> np.ndarray:
        """Row of each id, ``-1`` for ids not in the index."""
        query = encode_ids(ids)
        keys = query if self.exact else hash_ids(query)
        if len(keys) == 0 or self.size == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.searchsorted(self._keys, keys)
        pos_clipped = np.minimum(pos, self.size - 1)
        found = self._keys[pos_clipped] == keys
        return np.where(found, self._rows[pos_clipped], -1)

    def positions(self, ids: Sequence[str] | np.ndarray, where: str = "the bank") -> np.ndarray:
        """Rows of ``ids``; any unknown id is an :class:`UnknownIdsError` naming a few of them."""
        rows = self.lookup(ids)
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            names = [_as_str(ids[i]) for i in missing[:5]]
            raise UnknownIdsError(
                f"{len(missing)} of {len(rows)} ids are not in {where}, e.g. {names}; extract features "
                "for the split these ids come from"
            )
        return rows

    def contains(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        return self.lookup(ids) >= 0


def _as_str(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | np.bytes_) else str(value)
