"""AFT's learned teacher-feature weights μ (Qiu et al. 2024, §3).

Three parameterisations:

* ``diag`` (the paper): ``μ = sigmoid(s)``, ``s ∈ R^{dψ}`` initialised to zeros (μ = 0.5);
  the teacher feature is ``Ψ · diag(μ)``.
* ``dense`` (ablation in the reference code): a full ``S ∈ R^{dψ×dψ}`` initialised
  ``N(0, 1)/√dψ``, no sigmoid; the teacher feature is ``Ψ S``. The per-feature μ reported for
  it is the L2 norm of each row of ``S`` (how strongly input feature ``i`` enters ``Ψ S``).
* ``fixed``: μ = 0.5 everywhere, not trained (equivalent to no weighting: centring and row
  normalisation remove any common scale).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from fusion_aft.errors import UserInputError
from fusion_aft.objectives.base import normalised_entropy

MU_KINDS = ("diag", "dense", "fixed")


class FeatureWeights(nn.Module):
    """Holds μ for ``dψ`` teacher features split into named slices.

    Args:
        teacher_dims: ordered mapping teacher name → width.
        kind: ``"diag"``, ``"dense"`` or ``"fixed"`` (see the module docstring).
        trainable: whether ``s`` / ``S`` receive gradients (ignored for ``fixed``).
    """

    def __init__(self, teacher_dims: OrderedDict[str, int], kind: str = "diag", trainable: bool = True
                 ) -> None:
        super().__init__()
        if kind not in MU_KINDS:
            raise UserInputError(f"unknown mu {kind!r}; choose one of: {', '.join(MU_KINDS)}")
        self.kind = kind
        self.teacher_dims = OrderedDict(teacher_dims)
        dim = sum(self.teacher_dims.values())
        self.dim = dim
        if kind == "diag":
            self.s = nn.Parameter(torch.zeros(dim), requires_grad=bool(trainable))
        elif kind == "dense":
            self.S = nn.Parameter(torch.randn(dim, dim) / math.sqrt(dim), requires_grad=bool(trainable))

    # -- applying ---------------------------------------------------------------------------------
    def weights(self, dtype: torch.dtype) -> torch.Tensor | None:
        """Per-column weights μ for ``diag`` (differentiable), ``None`` for ``fixed``/``dense``."""
        if self.kind == "diag":
            return torch.sigmoid(self.s.to(dtype))
        return None

    def weigh(self, psi: torch.Tensor) -> torch.Tensor:
        """The weighted teacher feature: ``Ψ diag(μ)``, ``Ψ S``, or ``Ψ`` itself for ``fixed``."""
        if self.kind == "diag":
            return psi * torch.sigmoid(self.s.to(psi.dtype))
        if self.kind == "dense":
            return psi @ self.S.to(psi.dtype)
        return psi

    # -- reporting --------------------------------------------------------------------------------
    @property
    def mu(self) -> torch.Tensor:
        """Per-feature μ ``[dψ]`` (detached): sigmoid(s), row norms of S, or 0.5."""
        with torch.no_grad():
            if self.kind == "diag":
                return torch.sigmoid(self.s).detach().clone()
            if self.kind == "dense":
                return self.S.detach().norm(dim=1)
            return torch.full((self.dim,), 0.5)

    def by_teacher(self) -> OrderedDict[str, dict[str, float]]:
        """Per teacher: mean μ, share of the total μ mass, normalised entropy within it, width."""
        mu = self.mu.double().cpu()
        total = float(mu.sum())
        out: OrderedDict[str, dict[str, float]] = OrderedDict()
        start = 0
        for name, width in self.teacher_dims.items():
            part = mu[start : start + width]
            start += width
            out[name] = {
                "mean": float(part.mean()),
                "share": float(part.sum()) / total if total > 0 else 1.0 / len(self.teacher_dims),
                "entropy": normalised_entropy(part),
                "width": int(width),
            }
        return out

    def stats(self) -> dict[str, torch.Tensor]:
        """Detached summary tensors for step metrics (no host sync)."""
        if self.kind == "diag":
            mu = torch.sigmoid(self.s.detach())
        elif self.kind == "dense":
            mu = self.S.detach().norm(dim=1)
        else:
            return {}
        return {"mu_mean": mu.mean(), "mu_min": mu.min(), "mu_max": mu.max()}
