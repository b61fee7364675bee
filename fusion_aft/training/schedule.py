"""Learning-rate schedules applied to every optimiser group (student and objective alike).

The paper decays both the student's and the regulariser's learning rates with one cosine
schedule (Qiu et al. 2024, §4; docs/design.md §1 step 7): ``lr_t = lr_0 · ½(1 + cos(π t / T))``.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch.optim.lr_scheduler import LambdaLR


def cosine_factor(step: int, total_steps: int) -> float:
    """Multiplier of the base lr at ``step`` (0-based) of ``total_steps``: 1 at 0, → 0 at T."""
    if total_steps <= 0:
        return 1.0
    t = min(max(step, 0), total_steps)
    return 0.5 * (1.0 + math.cos(math.pi * t / total_steps))


def constant_factor(step: int, total_steps: int) -> float:
    return 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, kind: str, total_steps: int) -> LambdaLR:
    """One :class:`LambdaLR` whose factor multiplies each group's own base lr."""
    fn = {"cosine": cosine_factor, "constant": constant_factor}[kind]
    return LambdaLR(optimizer, partial(fn, total_steps=total_steps))
