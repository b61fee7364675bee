"""What the loop eats: training rows → student inputs, labels, a labelled mask and teacher rows.

Rows come from up to two splits, addressed by one combined index (labelled rows first, then
unlabelled ones). The student's own ``prepare``/``collate`` build its inputs, in DataLoader
workers when ``num_workers > 0``; teacher features are looked up in the joint bank by sample
id (never by position). Augmentation, when asked for (student-only runs), is seeded by
``(seed, step, index)`` so a resumed run sees exactly the same batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from fusion_aft.data.records import Split
from fusion_aft.errors import UserInputError


@dataclass
class Batch:
    """One collated batch; ``n_labelled`` rows (the first ones) carry a label used by CE."""

    inputs: Any
    labels: torch.Tensor
    n_labelled: int
    ids: list[str]
    teacher: torch.Tensor | None = None
    step: int = -1

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        return Batch(
            move(self.inputs, device, non_blocking),
            self.labels.to(device, non_blocking=non_blocking),
            self.n_labelled,
            self.ids,
            None if self.teacher is None else self.teacher.to(device, non_blocking=non_blocking),
            self.step,
        )

    def __len__(self) -> int:
        return len(self.ids)


def move(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move tensors (possibly nested in dicts, lists, tuples, or objects with ``.to``) to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return {k: move(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(move(v, device, non_blocking) for v in obj)
    if hasattr(obj, "to") and callable(obj.to):
        return obj.to(device)
    return obj


class RowDataset(Dataset):
    """Items ``(step, index)`` → ``(id, prepared input, label)`` over several splits in order."""

    #: prepared items up to this many elements are kept in memory (token ids, small vectors)
    CACHE_MAX_ELEMENTS = 16384

    def __init__(
        self,
        splits: Sequence[Split],
        student: Any,
        augment: bool = False,
        seed: int = 0,
        cache: bool = False,
    ) -> None:
        self.splits = [s for s in splits]
        self.starts: list[int] = []
        total = 0
        for split in self.splits:
            self.starts.append(total)
            total += len(split)
        self.total = total
        self.prepare = student.prepare
        self.augment = augment
        self.seed = seed
        # prepare() is deterministic, so small outputs (tokenised text) are computed once per run
        self.cache: dict[int, Any] | None = {} if cache else None

    def __len__(self) -> int:
        return self.total

    def locate(self, index: int) -> tuple[Split, int]:
        for split, start in zip(reversed(self.splits), reversed(self.starts), strict=True):
            if index >= start:
                return split, index - start
        raise IndexError(index)

    def __getitem__(self, item: tuple[int, int] | int) -> tuple[str, Any, int, int, int]:
        step, index = item if isinstance(item, tuple) else (-1, item)
        split, local = self.locate(index)
        if self.cache is not None and index in self.cache:
            record_id, x, label = self.cache[index]
            return record_id, x, label, step, index
        record = split[local]
        x = self.prepare(record)
        if self.cache is not None and _small(x, self.CACHE_MAX_ELEMENTS):
            self.cache[index] = (record.id, x, record.label)
        if self.augment:
            x = augment_image(x, _item_generator(self.seed, step, index))
        return record.id, x, record.label, step, index


def _small(x: Any, limit: int) -> bool:
    """Whether ``x`` (a tensor, or a dict/list/tuple of tensors) holds at most ``limit`` elements."""
    if isinstance(x, torch.Tensor):
        return x.numel() <= limit
    if isinstance(x, dict):
        x = list(x.values())
    if isinstance(x, list | tuple) and all(isinstance(v, torch.Tensor) for v in x):
        return sum(v.numel() for v in x) <= limit
    return False


def _item_generator(seed: int, step: int, index: int) -> torch.Generator:
    digest = hashlib.blake2b(f"{seed}:{step}:{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def augment_image(x: Any, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after reflection padding of ``pad`` pixels, then a random horizontal flip.

    The standard light augmentation of small image classifiers; ``x`` is a prepared image
    tensor ``[C, H, W]``.
    """
    if not (isinstance(x, torch.Tensor) and x.dim() == 3 and x.is_floating_point()):
        raise UserInputError(
            "augment=true needs an image student whose inputs are [C, H, W] float tensors; "
            "this student's inputs are not images; set augment=false"
        )
    _, h, w = x.shape
    padded = torch.nn.functional.pad(x.unsqueeze(0), (pad, pad, pad, pad), mode="reflect").squeeze(0)
    i = int(torch.randint(0, 2 * pad + 1, (1,), generator=gen))
    j = int(torch.randint(0, 2 * pad + 1, (1,), generator=gen))
    out = padded[:, i : i + h, j : j + w]
    if bool(torch.rand((), generator=gen) < 0.5):
        out = out.flip(-1)
    return out.contiguous()


class Collate:
    """Stack items with the student's ``collate`` and fetch the teacher rows for their ids."""

    def __init__(self, student: Any, bank: Any | None, n_labelled_total: int) -> None:
        self.student_collate = student.collate
        self.bank = bank
        self.n_labelled_total = n_labelled_total

    def __call__(self, items: Sequence[tuple[str, Any, int, int, int]]) -> Batch:
        ids = [it[0] for it in items]
        inputs = self.student_collate([it[1] for it in items])
        labels = torch.tensor([it[2] for it in items], dtype=torch.long)
        teacher = None
        if self.bank is not None:
            teacher = torch.from_numpy(self.bank.rows(ids)).float()
        # labelled rows come first in every training batch (see sampler.StepBatchSampler)
        n_labelled = sum(1 for it in items if it[4] < self.n_labelled_total)
        return Batch(inputs, labels, n_labelled, ids, teacher, items[0][3] if items else -1)


def train_loader(
    dataset: RowDataset,
    batch_sampler: Any,
    collate: Any,
    num_workers: int,
    seed: int,
    pin_memory: bool,
) -> DataLoader:
    """A DataLoader over a stateless step sampler; its own generator keeps the global RNG untouched."""
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )


def eval_loader(split: Split, student: Any, batch_size: int, num_workers: int) -> DataLoader:
    """Sequential batches over ``split`` (no teacher rows, every row labelled)."""
    dataset = RowDataset([split], student)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=Collate(student, None, len(split)),
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
    )
