"""Feature knowledge distillation: regress the teachers' features from the student's."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from fusion_aft.objectives.base import Metrics, Objective
from fusion_aft.objectives.registry import register_objective


@register_objective("kd")
class FeatureKD(Objective):
    r"""Feature KD: ``R = mean_{b,j}((Φ Wᵀ + c)_{bj} − Ψ_{bj})²`` with a learned linear head.

    The feature-distillation baseline of Qiu et al. 2024 (experiments, §4, "KD"; after Romero et al.,
    FitNets, ICLR 2015 and Heo et al. 2019): a ``Linear(dφ → dψ)`` head (with bias) maps the
    student features onto the raw concatenated teacher features; the mean squared error over
    the batch and all ``dψ`` dimensions is the regulariser. The head learns at the student's lr.

    Args:
        student_dim: width ``dφ`` of the student features.
        teacher_dims: ordered mapping teacher name → width.

    Inputs:
        +------------------------+-------------------------------+---------------------+
        | student_features       | teacher_features              | returns             |
        +========================+===============================+=====================+
        | float ``[B, dφ]``      | float ``[B, dψ]`` (detached)  | ``(mse, {"mse"})``  |
        +------------------------+-------------------------------+---------------------+

    Example::

        obj = fusion_aft.objectives.create("kd", 8, {"a": 10})
        loss, metrics = obj(torch.randn(16, 8), torch.randn(16, 10))
    """

    param_lr = None

    def __init__(self, student_dim: int, teacher_dims: Mapping[str, int]) -> None:
        super().__init__(student_dim, teacher_dims)
        self.head = nn.Linear(self.student_dim, self.teacher_dim)

    def compute(self, student: torch.Tensor, teacher: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        assert teacher is not None
        pred = self.head(student.to(self.head.weight.dtype)).to(student.dtype)
        mse = torch.mean(torch.square(pred - teacher))
        return mse, {"mse": mse.detach()}
