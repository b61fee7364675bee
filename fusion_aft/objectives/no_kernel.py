"""AFT without a kernel: regress the student features on a learned map of the weighted teachers."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch
from torch import nn

from fusion_aft.errors import UserInputError
from fusion_aft.objectives.base import Metrics, Objective
from fusion_aft.objectives.kernels import centre
from fusion_aft.objectives.mu import FeatureWeights
from fusion_aft.objectives.registry import register_objective


@register_objective("aft_no_kernel")
class AFTNoKernel(Objective):
    r"""AFT ablation without a kernel: ``R = mean((HΦ − H(Ψ diag(μ)) Wᵀ)²)``.

    Qiu et al. 2024 (reference code's "no kernel" ablation): instead of
    comparing kernels, a learned linear map ``W: R^{dψ} → R^{dφ}`` (no bias; the centring ``H``
    over the batch would remove it) projects the μ-weighted teacher features onto the student's
    space; both sides are centred over the batch and compared by the mean squared error over
    the batch and the ``dφ`` dimensions.

    Args:
        student_dim: width ``dφ`` of the student features.
        teacher_dims: ordered mapping teacher name → width.
        mu: ``"diag"`` (default), ``"dense"`` or ``"fixed"`` (as in :class:`~fusion_aft.objectives.aft.AFT`).
        mu_lr: learning rate of μ's parameters (1e-2); the projection learns at the student's lr.
        train_mu: learn μ (default True).

    Inputs:
        +-----------------------------+-----------------------------+-----------------------------+
        | student_features            | teacher_features            | returns                     |
        +=============================+=============================+=============================+
        | float ``[B, dφ]``, B >= 2   | float ``[B, dψ]`` (detached)| ``(mse, {"mse", "mu_mean",  |
        |                             |                             | "mu_min", "mu_max"})``      |
        +-----------------------------+-----------------------------+-----------------------------+

    Example::

        obj = fusion_aft.objectives.create("aft_no_kernel", 8, {"a": 10})
        loss, metrics = obj(torch.randn(16, 8), torch.randn(16, 10))
    """

    needs_pairs = True
    param_lr = None

    def __init__(self, student_dim: int, teacher_dims: Mapping[str, int], *, mu: str = "diag",
                 mu_lr: float = 1e-2, train_mu: bool = True) -> None:
        super().__init__(student_dim, teacher_dims)
        if not mu_lr > 0:
            raise UserInputError(f"objective '{self.name}': mu_lr must be > 0, got {mu_lr!r}")
        self.mu_lr = float(mu_lr)
        self.weights = FeatureWeights(self.teacher_dims, kind=mu, trainable=train_mu)
        self.proj = nn.Linear(self.teacher_dim, self.student_dim, bias=False)
        self._set_options(mu=mu, mu_lr=float(mu_lr), train_mu=bool(train_mu))

    @property
    def mu(self) -> torch.Tensor:
        """Per-feature weights ``[dψ]`` (detached)."""
        return self.weights.mu

    def mu_by_teacher(self) -> OrderedDict[str, dict[str, float]]:
        """Per teacher: mean μ, share of the μ mass, normalised entropy, width."""
        return self.weights.by_teacher()

    def param_groups(self, student_lr: float) -> list[dict]:
        """μ at ``mu_lr`` (its own lr, never decayed); the projection at the student's lr."""
        groups = []
        mu_params = [p for p in self.weights.parameters() if p.requires_grad]
        if mu_params:
            mu_group = {"params": mu_params, "lr": self.mu_lr, "name": "objective/mu", "own_lr": True}
            groups.append({**mu_group, "weight_decay": 0.0})
        head = list(self.proj.parameters())
        groups.append({"params": head, "lr": student_lr, "name": "objective/head", "own_lr": False})
        return groups

    def compute(self, student: torch.Tensor, teacher: torch.Tensor | None) -> tuple[torch.Tensor, Metrics]:
        assert teacher is not None
        target = self.proj(self.weights.weigh(teacher).to(self.proj.weight.dtype)).to(student.dtype)
        mse = torch.mean(torch.square(centre(student) - centre(target)))
        return mse, {"mse": mse.detach(), **self.weights.stats()}
