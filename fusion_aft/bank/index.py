"""Sample id → row lookup that scales to 10⁷ rows: a hash table of 64-bit id hashes.

Ids are stored as fixed-width UTF-8 bytes (numpy ``S`` arrays). They are hashed with a vectorised
FNV-style hash over 8-byte words plus a splitmix64 finaliser (no Python loop over rows), placed in an
open-addressing table (:class:`HashTable`, linear probing, load ≤ 0.6), so a lookup costs one
random memory access per id whatever the bank's size (a binary search over sorted hashes costs
``log₂ n`` dependent cache misses: 2.6× slower at 10⁷ rows than at 10⁴). Memory: about 20 bytes
per row. If two ids ever share a hash (odds about n²/2⁶⁵), the index falls back to exact search
over the sorted ids themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from fusion_aft.errors import UserInputError

__all__ = ["HashTable", "IdIndex", "UnknownIdsError", "encode_ids", "hash_ids"]

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
    """``uint64`` hash per id, independent of the array's padding width.

    FNV-style over 8-byte little-endian words (each word xor-ed in, multiplied by the FNV prime,
    its high half folded down), then the byte length and a splitmix64 finaliser. Words past an
    id's length are skipped, so the zero padding of a wider array changes nothing. One numpy pass
    per 8 bytes of the longest id, not per byte: short ids hash in one pass.
    """
    arr = encode_ids(ids)
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    width = -(-arr.dtype.itemsize // 8) * 8
    arr = np.ascontiguousarray(arr if width == arr.dtype.itemsize else arr.astype(f"S{width}"))
    words = arr.view("<u8").reshape(n, width // 8)
    lengths = np.char.str_len(arr)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for col in range(width // 8):
            live = None if col == 0 else lengths > 8 * col
            if live is not None and not live.any():
                break
            mixed = (h ^ words[:, col]) * _FNV_PRIME
            mixed ^= mixed >> np.uint64(32)
            h = mixed if live is None else np.where(live, mixed, h)
        h ^= lengths.astype(np.uint64)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


class HashTable:
    """Distinct ``uint64`` keys → values ``0..n-1``: open addressing with linear probing.

    A key's home slot is ``(key >> 32) · m >> 32`` (its high bits scaled to the ``m`` slots), which
    grows with the key, so placing the keys in sorted order puts each one at the first free slot at
    or after its home with one cumulative maximum, no loop. ``lookup`` reads a window of
    ``WINDOW`` neighbouring slots per key at once (one or two cache lines) and stops at the first
    empty slot. The table has no wrap-around: it ends with at least ``WINDOW`` empty slots.
    Memory: 12 bytes per slot (the key and an ``int32`` value), ``n / LOAD`` slots.
    """

    LOAD = 0.6
    WINDOW = 8
    BLOCK = 1 << 16  # queries per vectorised pass (bounds the temporaries of a bulk lookup)

    def __init__(self, sorted_keys: np.ndarray, values: np.ndarray) -> None:
        """``sorted_keys``: distinct, ascending ``uint64``; ``values[i]`` goes with ``sorted_keys[i]``."""
        n = len(sorted_keys)
        self.size = n
        self.slots = max(1, math.ceil(n / self.LOAD))
        homes = self.home(sorted_keys)
        if n > 1 and bool((homes[1:] < homes[:-1]).any()):  # only when slots >= 2**32
            by_home = np.argsort(homes, kind="stable")
            sorted_keys, values, homes = sorted_keys[by_home], values[by_home], homes[by_home]
        place = homes.view(np.int64)  # a fresh array of homes < 2⁶³: reused in place
        del homes
        steps = np.arange(n, dtype=np.int64)
        place -= steps
        np.maximum.accumulate(place, out=place)
        place += steps
        del steps
        length = max(self.slots, int(place[-1]) + 1 if n else 0) + self.WINDOW
        # empty slots: value -1 (their key 0 may equal a query's key; the value says "absent")
        self._window = np.arange(self.WINDOW)
        self.keys = np.zeros(length, dtype=np.uint64)
        self.values = np.full(length, -1, dtype=np.int32 if n < 2**31 else np.int64)
        self.keys[place] = sorted_keys
        self.values[place] = values

    def home(self, keys: np.ndarray) -> np.ndarray:
        """Home slot of each key."""
        if self.slots < 2**32:
            return ((keys >> np.uint64(32)) * np.uint64(self.slots)) >> np.uint64(32)
        return keys % np.uint64(self.slots)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Value of each key, ``-1`` where the key is not in the table."""
        keys = np.asarray(keys, dtype=np.uint64)
        if self.size == 0 or len(keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        if len(keys) <= self.BLOCK:
            return self._lookup(keys)
        return np.concatenate(
            [self._lookup(keys[a : a + self.BLOCK]) for a in range(0, len(keys), self.BLOCK)]
        )

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        slots = self.home(keys).astype(np.int64)[:, None] + self._window
        hit = self.keys[slots] == keys[:, None]
        # a present key sits before any empty slot of its run, so the first hit is the answer
        # (a hit on an empty slot, whose key is 0, reads value -1: absent)
        out = self.values[slots[np.arange(len(keys)), hit.argmax(axis=1)]].astype(np.int64)
        found = hit.any(axis=1)
        if found.all():
            return out
        todo = np.flatnonzero(~found)
        slots = slots[todo]
        while len(todo):
            # absent where the window held an empty slot; else the run goes on: the next window
            full = (self.values[slots] >= 0).all(axis=1)
            out[todo[~full]] = -1
            todo, slots = todo[full], slots[full] + self.WINDOW
            hit = self.keys[slots] == keys[todo, None]
            found = hit.any(axis=1)
            out[todo[found]] = self.values[slots[found, hit[found].argmax(axis=1)]]
            todo, slots = todo[~found], slots[~found]
        return out

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.values.nbytes)


class IdIndex:
    """Maps ids to their row in one ordering of ids (a bank's ``ids.npy``)."""

    def __init__(self, ids: Sequence[str] | np.ndarray, exact: bool = False) -> None:
        arr = encode_ids(ids)
        self.size = len(arr)
        self.exact = exact
        self._table: HashTable | None = None
        if not exact:
            hashes = hash_ids(arr)
            order = np.argsort(hashes)
            keys = hashes[order]
            del hashes
            if self.size > 1 and bool((keys[1:] == keys[:-1]).any()):
                self.exact = True
            else:
                self._table = HashTable(keys, order)
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
        if self._table is not None:
            return self._table.lookup(hash_ids(query))
        if len(query) == 0 or self.size == 0:
            return np.full(len(query), -1, dtype=np.int64)
        pos = np.searchsorted(self._keys, query)
        pos_clipped = np.minimum(pos, self.size - 1)
        found = self._keys[pos_clipped] == query
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
