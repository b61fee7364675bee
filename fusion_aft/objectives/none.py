"""Standard transfer learning (STL): no regulariser, cross-entropy only."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from fusion_aft.objectives.base import Metrics, Objective
from fusion_aft.objectives.registry import register_objective


@register_objective("none")
class NoTransfer(Objective):
    """STL: fine-tune the student with cross-entropy only; ``R = 0`` and no teachers are used.

    The baseline every method in Qiu et al. 2024 is normalised by (experiments, §4, "STL").
    Teacher features are ignored (``uses_teachers=False``), so the trainer need not extract a bank.

    Args:
        student_dim: width ``dφ`` of the student features.
        teacher_dims: ignored (may be empty).

    Inputs:
        +------------------------+----------------------------+----------------------+
        | student_features       | teacher_features           | returns              |
        +========================+============================+======================+
        | float ``[B, dφ]``      | ignored (may be ``None``)  | ``(0.0, {})``        |
        +------------------------+----------------------------+----------------------+

    Example::

        obj = fusion_aft.objectives.create("none", 8, {})
        loss, metrics = obj(torch.randn(16, 8))   # tensor(0.)
    """

    uses_teachers = False
    finite_check = "inputs"  # the loss is zero whatever the features are

    def __init__(self, student_dim: int, teacher_dims: Mapping[str, int] | None = None) -> None:
        super().__init__(student_dim, teacher_dims or {})

    def compute(self, student: torch.Tensor, teacher: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        return student.new_zeros(()), {}
