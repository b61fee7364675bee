"""The training banks a ranking reads: reuse complete ones without loading a teacher, extract the rest.

A complete bank is found from the teacher card's fingerprint and the split's fingerprint alone,
so ranking from cached banks does not load any model. The ranking reads only the labelled
training rows, so any complete bank that holds them will do: the candidates are tried in order
(``fusion-aft train``'s bank over the training split and the dataset's own unlabelled rows
first, then one over the training split alone). When none is on disk, the first candidate is
built (or resumed) by :func:`fusion_aft.extract` with its usual progress bar, so that training
afterwards finds it; the seconds it took are kept as that bank's measured extraction time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fusion_aft.ranking.cost import BankCost, bank_cost

__all__ = ["open_or_extract"]

log = logging.getLogger(__name__)


def _cached(ref: str, split: Any, dataset_name: str, dfp: str, cache_dir: Any, dtype: str) -> Any | None:
    """The complete bank of ``ref`` for ``split`` if it is on disk, else None (no model loaded)."""
    from fusion_aft import teachers
    from fusion_aft.bank import CorruptBankError, TeacherBank, bank_folder

    card = teachers.get(ref)
    folder = bank_folder(
        cache_dir,
        dataset_name,
        split.name,
        dfp,
        str(card.ref or card.name),
        str(card.fingerprint()),
        dtype,
    )
    if not (folder / "manifest.json").is_file():
        return None
    try:
        bank = TeacherBank.open(folder)
    except CorruptBankError as exc:
        log.info("bank %s is not usable as is (%s); extracting", folder, exc)
        return None
    return bank


def open_or_extract(
    refs: Sequence[str],
    dataset: Any,
    split: Any | Sequence[Any],
    cache_dir: str | Path | None = None,
    device: Any = "cpu",
    batch_size: int = 64,
    dtype: str = "fp16",
    progress: bool = True,
) -> tuple[Any, dict[str, BankCost]]:
    """A :class:`JointBank` of ``refs`` and the cost of each teacher's bank.

    ``split`` is one split or a sequence of candidate splits that all hold the rows the caller
    reads: per teacher, the first candidate with a complete bank on disk is used, else the first
    candidate is extracted.
    """
    import fusion_aft
    from fusion_aft.bank import JointBank
    from fusion_aft.bank.manifest import now
    from fusion_aft.data.fingerprint import dataset_fingerprint

    candidates = list(split) if isinstance(split, (list, tuple)) else [split]
    fingerprints = [dataset_fingerprint(c) for c in candidates]
    banks, costs = [], {}
    for ref in refs:
        bank = next(
            (
                found
                for c, dfp in zip(candidates, fingerprints, strict=True)
                if (found := _cached(ref, c, dataset.name, dfp, cache_dir, dtype)) is not None
            ),
            None,
        )
        measured = None
        if bank is None:
            started, t0 = now(), time.perf_counter()
            joint = fusion_aft.extract(
                [ref],
                dataset,
                candidates[0],
                cache_dir=cache_dir,
                batch_size=batch_size,
                device=device,
                dtype=dtype,
                progress=progress,
            )
            bank = joint.banks[0]
            if bank.manifest.created >= started:  # written from scratch by this call (not resumed)
                measured = time.perf_counter() - t0
        banks.append(bank)
        costs[ref] = bank_cost(bank.folder, bank.manifest, measured)
    return JointBank(banks), costs
