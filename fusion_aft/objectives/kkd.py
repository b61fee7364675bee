"""Kernel knowledge distillation: AFT's kernel distance with a learned map on the student side."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from fusion_aft.errors import UserInputError
from fusion_aft.objectives.base import Metrics, Objective
from fusion_aft.objectives.kernels import (
    KERNELS,
    centre,
    centred_gram,
    kernel_distance,
    kernel_from_gram,
    linear_kernel_distance,
)
from fusion_aft.objectives.registry import register_objective


@register_objective("kkd")
class KernelKD(Objective):
    r"""Kernel KD: ``R = d_k(K(Φ Wᵀ), K(Ψ))`` with a learned ``W ∈ R^{dφ×dφ}`` and no μ.

    Ablation in Qiu et al. 2024 (reference code, "kernel KD"): the
    same centred, row-normalised kernels and RMSE distance as :class:`~fusion_aft.objectives.aft.AFT`,
    but the learned freedom sits on the *student* side (a linear map, no bias since the batch
    centring removes it) and the teacher features are used unweighted. The map learns at the
    student's lr.

    Args:
        student_dim: width ``dφ`` of the student features.
        teacher_dims: ordered mapping teacher name → width.
        kernel: ``"linear"`` (default) or ``"rbf"``.

    Inputs:
        +---------------------------+---------------------------+-------------------------+
        | student_features          | teacher_features          | returns                 |
        +===========================+===========================+=========================+
        | float ``[B, dφ]``, B >= 2 | float ``[B, dψ]`` (detached)| ``(d_k, {"dk"})``     |
        +---------------------------+---------------------------+-------------------------+

    Example::

        obj = fusion_aft.objectives.create("kkd", 8, {"a": 10})
        loss, metrics = obj(torch.randn(16, 8), torch.randn(16, 10))
    """

    needs_pairs = True
    param_lr = None

    def __init__(self, student_dim: int, teacher_dims: Mapping[str, int], *, kernel: str = "linear") -> None:
        super().__init__(student_dim, teacher_dims)
        if kernel not in KERNELS:
            raise UserInputError(f"objective '{self.name}': unknown kernel {kernel!r}; "
                                 f"choose one of: {', '.join(KERNELS)}")
        self.kernel = kernel
        self.proj = nn.Linear(self.student_dim, self.student_dim, bias=False)
        self._set_options(kernel=kernel)

    def compute(self, student: torch.Tensor, teacher: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        assert teacher is not None
        mapped = self.proj(student.to(self.proj.weight.dtype)).to(student.dtype)
        if self.kernel == "linear":
            dk = linear_kernel_distance(mapped, centre(teacher), None)
        else:
            dk = kernel_distance(kernel_from_gram(centred_gram(mapped), self.kernel),
                                 kernel_from_gram(centred_gram(teacher), self.kernel))
        return dk, {"dk": dk.detach()}
