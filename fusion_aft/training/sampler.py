"""Deterministic, stateless batch order: batch ``t`` is a pure function of ``(seed, t)``.

Each epoch of a stream is a fresh permutation drawn from a generator seeded by (seed, stream,
epoch), so resuming at step ``t`` needs nothing but ``t``: the sampler position is the step. Two
streams (labelled rows and, for semi-supervised runs, unlabelled rows) cycle independently; one
step's batch is the labelled rows first, then the unlabelled ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from fusion_aft.training.config import steps_per_epoch


@dataclass(frozen=True)
class Stream:
    """``size`` rows (indices ``offset … offset+size-1`` of the combined index) in batches."""

    size: int
    batch_size: int
    offset: int = 0
    key: int = 0
    min_batch: int = 1

    @property
    def per_epoch(self) -> int:
        return steps_per_epoch(self.size, self.batch_size, self.min_batch)

    def batch(self, seed: int, step: int) -> list[int]:
        epoch, k = divmod(step, self.per_epoch)
        gen = torch.Generator().manual_seed(_mix(seed, self.key, epoch))
        perm = torch.randperm(self.size, generator=gen)
        part = perm[k * self.batch_size : (k + 1) * self.batch_size]
        return (part + self.offset).tolist()

    def position(self, step: int) -> dict[str, int]:
        epoch, k = divmod(step, self.per_epoch)
        return {"epoch": epoch, "batch_in_epoch": k}


def _mix(seed: int, key: int, epoch: int) -> int:
    """A 63-bit seed for one (seed, stream, epoch); distinct inputs give distinct seeds."""
    x = (seed * 0x9E3779B97F4A7C15 + key * 0xBF58476D1CE4E5B9 + epoch * 0x94D049BB133111EB) & (2**63 - 1)
    return x or 1


class StepBatchSampler:
    """Yields, for steps ``start … total-1``, the list of ``(step, index)`` items of each batch.

    The step travels with each item so per-example randomness (augmentation) can be seeded by
    ``(seed, step, index)`` and stays identical across a resume and across worker counts.
    """

    def __init__(self, streams: list[Stream], seed: int, total_steps: int, start_step: int = 0) -> None:
        self.streams = streams
        self.seed = seed
        self.total_steps = total_steps
        self.start_step = start_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.total_steps):
            yield [(step, i) for s in self.streams for i in s.batch(self.seed, step)]

    def __len__(self) -> int:
        return max(self.total_steps - self.start_step, 0)

    def state(self, step: int) -> dict[str, object]:
        """The position after ``step`` steps, for checkpoints (informational: it is the step)."""
        return {"seed": self.seed, "step": step, "streams": [s.position(step) for s in self.streams]}
