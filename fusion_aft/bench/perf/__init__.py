"""``fusion-aft bench perf``: is AFT's transfer really "minimal overhead"? Five measured ratios.

Qiu et al. 2024 (§3) argue the regulariser adds ``O(B²(dφ + dψ))`` per step and that teachers
cost nothing at training time because their features are cached. This module measures it on
the machine at hand and writes ``perf.json`` (figures, machine, library versions, date, and each
target with pass/fail) plus ``perf.png``:

1. ``overhead``: training step time with AFT (bank lookup + regulariser) ÷ step time with STL,
   same student, same batch; targets ≤ 1.10 (small students), ≤ 1.05 (ViT-S/16). Each case
   also records ``regulariser_share``, the regulariser's own forward + backward ÷ the STL step:
   the ratio cannot go below ``1 + regulariser_share``, which for the offline suite's pixel MLP
   and bag-of-words students is above the target (their steps cost less than the ``O(B²dψ)``
   Gram products of AFT).
2. ``regulariser``: AFT's regulariser ÷ a straightforward implementation of the same formula
   (:mod:`fusion_aft.objectives.reference`), forward + backward; target ≤ 1.0, plus the largest
   loss/gradient difference in float64.
3. ``extraction``: rows/s of :func:`fusion_aft.extract` ÷ rows/s of the bare
   ``teacher.forward_batch`` on pre-loaded tensors, same batch size; target ≥ 0.9.
4. ``memory``: peak RSS of a training epoch reading a large on-disk bank (ours, memory-mapped)
   vs the same epoch with the bank loaded into RAM (as the reference code does) vs no bank,
   each in its own subprocess; target: ours ≤ 1 GiB above no bank.
5. ``scaling``: bank open time, ``JointBank.rows`` lookup time and step time from 10⁴ to 10⁷
   rows; target: lookup and step flat (largest ÷ smallest ≤ 1.5).

Shared machines are noisy, so every comparison runs both arms in the same process,
interleaved (A B B A ...), and reports medians and the ratio of medians. Nothing here is a
timed assertion; the tests only check that the report is complete and well formed.

Example::

    fusion-aft bench perf --out benchmarks/results          # full run, about 7 min on 2 cores
    fusion-aft bench perf --out /tmp/perf --quick           # smoke run, well under a minute
    fusion-aft bench perf --out /tmp/perf --section scaling # one section (repeatable)
"""

from __future__ import annotations

from fusion_aft.bench.perf.entry import PerfReport, main, summarise
from fusion_aft.bench.perf.regulariser import regulariser_agreement
from fusion_aft.bench.perf.sizes import SCHEMA, SECTIONS, Sizes, StudentCase, full_sizes, quick_sizes

__all__ = [
    "SCHEMA",
    "SECTIONS",
    "PerfReport",
    "Sizes",
    "StudentCase",
    "full_sizes",
    "main",
    "quick_sizes",
    "regulariser_agreement",
    "summarise",
]
