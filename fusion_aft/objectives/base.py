"""The interface every transfer objective implements.

An objective is an ``nn.Module`` built from the student's feature width and the teachers' named
widths. Called on ``(student_features [B, dφ], teacher_features [B, dψ])`` it returns
``(loss, metrics)`` where ``loss`` is the regulariser R (the trainer adds ``β · R`` to the
cross-entropy) and ``metrics`` maps names to detached scalar tensors (no host sync).
Its own parameters form a separate optimiser group with their own default learning rate.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn


class Objective(nn.Module):
    """Base class: stores widths, checks inputs, declares the optimiser group."""

    #: default learning rate of this objective's own parameters; ``None`` = the student's lr
    param_lr: float | None = None
    #: True when the loss compares examples within the batch (needs B >= 2)
    needs_pairs: bool = False
    #: True when the objective uses teacher features at all (``none`` does not)
    uses_teachers: bool = True

    def __init__(self, student_dim: int, teacher_dims: Mapping[str, int]) -> None:
        super().__init__()
        self.student_dim = int(student_dim)
        self.teacher_dims: OrderedDict[str, int] = OrderedDict((k, int(v)) for k, v in teacher_dims.items())
        self.teacher_dim = sum(self.teacher_dims.values())

    def param_groups(self, student_lr: float) -> list[dict]:
        """Optimiser groups for this objective's parameters (empty if it has none)."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return []
        lr = self.param_lr if self.param_lr is not None else student_lr
        return [{"params": params, "lr": lr, "name": "objective"}]

    #: True when :meth:`fit` must run on the training bank before the first step
    needs_fit: bool = False

    def fit(
        self,
        teacher_features: torch.Tensor,
        labels: torch.Tensor,
        student_features: torch.Tensor | None = None,
    ) -> None:
        """Fit data-dependent parts before training (FT's autoencoders, B-Tuning's LogME).

        Args:
            teacher_features: ``[N, dψ]`` training-bank rows (labelled and unlabelled).
            labels: ``[N]`` integer labels, ``-1`` for unlabelled rows.
            student_features: ``[N, dφ]`` features of the student at initialisation (B-Tuning).
        """
        return None
