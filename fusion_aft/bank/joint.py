"""The joint bank: several teacher banks joined by sample id, as one ``B × Σd`` view.

Nothing is copied into memory as a whole: :meth:`JointBank.rows` maps ids to row numbers with an
:class:`~fusion_aft.bank.index.IdIndex` (a hash table, shared by banks of the same split), sorts
the row numbers so the reads are local (consecutive rows are one read), reads them, and restores
the order asked for. Teachers
keep the order they were given in; ``slices`` names each teacher's columns (docs/design.md §2).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fusion_aft.bank.index import IdIndex, encode_ids
from fusion_aft.bank.store import TeacherBank
from fusion_aft.errors import UserInputError

__all__ = ["BankRows", "JointBank"]


class JointBank:
    """Teacher banks joined by sample id.

    Attributes:
        dims: ordered ``teacher ref -> width``.
        slices: ``teacher ref -> slice`` of the columns of :meth:`rows`.
        dim: total width ``Σ d``.
    """

    def __init__(self, banks: Sequence[TeacherBank]) -> None:
        if not banks:
            raise UserInputError("a joint bank needs at least one teacher bank")
        refs = [b.ref for b in banks]
        dup = {r for r in refs if refs.count(r) > 1}
        if dup:
            raise UserInputError(f"teacher(s) {sorted(dup)} given twice; each teacher may appear once")
        self.banks = list(banks)
        self.dims: OrderedDict[str, int] = OrderedDict((b.ref, b.width) for b in self.banks)
        self.slices: OrderedDict[str, slice] = OrderedDict()
        start = 0
        for ref, width in self.dims.items():
            self.slices[ref] = slice(start, start + width)
            start += width
        self.dim = start
        self._indexes: dict[str, IdIndex] = {}
        self._ids: list[str] | None = None

    @classmethod
    def open(cls, folders: Sequence[str | Path], split: Any = None) -> JointBank:
        """Join the complete banks in ``folders``; with ``split``, refuse banks built for other data."""
        joint = cls([TeacherBank.open(f) for f in folders])
        if split is not None:
            joint.check(split)
        return joint

    # -- identity ---------------------------------------------------------------------------------
    @property
    def teachers(self) -> list[str]:
        return list(self.dims)

    @property
    def fingerprints(self) -> dict[str, dict[str, str]]:
        """``ref -> {"teacher", "weights", "dataset"}`` fingerprints of each bank."""
        return {
            b.ref: {
                "teacher": b.manifest.teacher.fingerprint,
                "weights": b.manifest.teacher.weights_digest,
                "dataset": b.manifest.dataset.fingerprint,
            }
            for b in self.banks
        }

    @property
    def manifests(self) -> dict[str, Any]:
        return {b.ref: b.manifest for b in self.banks}

    @property
    def mean(self) -> dict[str, np.ndarray]:
        """Per-teacher per-feature mean (float32), from the manifests."""
        return {b.ref: b.mean for b in self.banks}

    @property
    def std(self) -> dict[str, np.ndarray]:
        """Per-teacher per-feature std (float32), from the manifests."""
        return {b.ref: b.std for b in self.banks}

    def check(self, split: Any) -> None:
        """Raise :class:`~fusion_aft.errors.StaleBankError` unless every bank was built for ``split``."""
        for bank in self.banks:
            bank.check_split(split)

    # -- ids --------------------------------------------------------------------------------------
    def _index(self, bank: TeacherBank) -> IdIndex:
        key = bank.manifest.ids_sha256
        index = self._indexes.get(key)
        if index is None:
            index = IdIndex(np.asarray(bank.id_bytes))
            self._indexes[key] = index
        return index

    def _groups(self) -> list[tuple[IdIndex, list[TeacherBank]]]:
        groups: OrderedDict[str, list[TeacherBank]] = OrderedDict()
        for bank in self.banks:
            groups.setdefault(bank.manifest.ids_sha256, []).append(bank)
        return [(self._index(banks[0]), banks) for banks in groups.values()]

    @property
    def ids(self) -> list[str]:
        """Ids present in every bank, in the first bank's row order."""
        if self._ids is None:
            first = self.banks[0]
            ids = np.asarray(first.id_bytes)
            for index, _ in self._groups():
                ids = ids[index.contains(ids)]
            self._ids = [b.decode("utf-8") for b in ids.tolist()]
        return self._ids

    def __len__(self) -> int:
        return len(self.ids)

    def contains(self, ids: Sequence[str]) -> np.ndarray:
        """``bool[len(ids)]``: whether every teacher has a row for each id."""
        query = encode_ids(ids)
        found = np.ones(len(query), dtype=bool)
        for index, _ in self._groups():
            found &= index.contains(query)
        return found

    # -- rows -------------------------------------------------------------------------------------
    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """``float32 [len(ids), dim]``: the teachers' features for ``ids``, in that order."""
        query = encode_ids(list(ids) if not isinstance(ids, np.ndarray) else ids)
        out = np.empty((len(query), self.dim), dtype=np.float32)
        if len(query) == 0:
            return out
        for index, banks in self._groups():
            positions = index.positions(query, where=f"the bank of '{banks[0].ref}'")
            order = np.argsort(positions, kind="stable")
            sorted_positions = positions[order]
            for bank in banks:
                out[order, self.slices[bank.ref]] = _float32(bank.checked_rows(sorted_positions))
        return out

    def teacher_rows(self, ids: Sequence[str], ref: str) -> np.ndarray:
        """``float32 [len(ids), width]``: one teacher's features for ``ids``, read from its memory map
        alone (the other teachers' files are not touched)."""
        bank = next((b for b in self.banks if b.ref == ref), None)
        if bank is None:
            raise UserInputError(f"teacher '{ref}' is not in this bank; it holds {', '.join(self.dims)}")
        query = encode_ids(list(ids) if not isinstance(ids, np.ndarray) else ids)
        out = np.empty((len(query), bank.width), dtype=np.float32)
        if len(query) == 0:
            return out
        positions = self._index(bank).positions(query, where=f"the bank of '{ref}'")
        order = np.argsort(positions, kind="stable")
        out[order] = _float32(bank.checked_rows(positions[order]))
        return out

    def lazy_rows(self, ids: Sequence[str]) -> BankRows:
        """The rows of ``ids`` as a :class:`BankRows` view: nothing is read until a block is asked for."""
        return BankRows(self, ids)

    def tensor(self, ids: Sequence[str], device: Any = "cpu") -> Any:
        """:meth:`rows` as a float32 ``torch.Tensor`` on ``device``."""
        import torch

        return torch.from_numpy(self.rows(ids)).to(device)

    def split_features(self, features: Any) -> dict[str, Any]:
        """Cut a ``[..., dim]`` array/tensor into ``ref -> [..., width]`` along the last axis."""
        return {ref: features[..., sl] for ref, sl in self.slices.items()}

    # -- pickling (DataLoader workers reopen the memory maps) -------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_indexes"] = {}
        return state

    def __repr__(self) -> str:
        teachers = ", ".join(f"{r}:{d}" for r, d in self.dims.items())
        m = self.banks[0].manifest
        return f"JointBank([{teachers}], {m.dataset.name}/{m.dataset.split}, rows={m.shape[0]})"


class BankRows:
    """The teacher features of a set of rows, read one teacher block at a time from the memory maps.

    What an objective's ``fit`` (FT's autoencoders, B-Tuning's LogME) receives instead of the whole
    ``[N, Σd]`` bank on the device: ``block(slice)`` gives one teacher's columns as a CPU float32
    tensor, so the host holds one teacher's block at a time and the device only what the fit
    moves there (FT: its mini-batches).
    """

    def __init__(self, bank: JointBank, ids: Sequence[str]) -> None:
        self.bank = bank
        self.ids = list(ids)
        self.shape = (len(self.ids), bank.dim)
        self.ndim = 2

    def block(self, sl: slice) -> Any:
        """Columns ``sl`` (one teacher's slice, or any slice) as a CPU float32 ``torch.Tensor``."""
        import torch

        for ref, own in self.bank.slices.items():
            if own == sl:
                return torch.from_numpy(self.bank.teacher_rows(self.ids, ref))
        return torch.from_numpy(self.bank.rows(self.ids)[:, sl])

    def __repr__(self) -> str:
        return f"BankRows({self.shape[0]} rows × {self.shape[1]} of {self.bank!r})"


_SERIAL_ELEMENTS = 16384  # under torch's grain size (32768): one thread, no OpenMP wake-up


def _float32(block: np.ndarray) -> np.ndarray:
    """``block`` as float32 (exact). float16 goes through torch's vectorised conversion, about 8×
    faster than numpy's (128 × 384 values: 65 → 8 µs), in pieces small enough that torch never
    hands them to its thread pool (waking it cost milliseconds on a busy machine)."""
    if block.dtype != np.float16:
        return block.astype(np.float32, copy=False)
    import torch

    src = torch.from_numpy(block if block.flags.writeable else block.copy())
    if torch.get_num_threads() == 1 or block.size <= _SERIAL_ELEMENTS:
        return src.float().numpy()
    out = np.empty(block.shape, dtype=np.float32)
    dst = torch.from_numpy(out)
    step = max(1, _SERIAL_ELEMENTS // max(1, int(np.prod(block.shape[1:]))))
    for a in range(0, len(block), step):
        dst[a : a + step].copy_(src[a : a + step])
    return out
