"""A straightforward AFT regulariser: the baseline for benchmarks and a cross-check for tests.

This is what a direct transcription of Qiu et al. 2024 §3 looks like: separate centring and
row normalisation of both sides, two explicit ``B×B`` kernels, the RMSE, and a ``.item()`` per
step for logging (a host synchronisation on accelerators). It is deliberately not optimised
and is not registered as an objective. :class:`~fusion_aft.objectives.aft.AFT` must give the
same numbers (tests) at a lower cost (``fusion-aft bench perf``).

Example::

    ref = ReferenceAFT(teacher_dim=10)
    loss, metrics = ref(torch.randn(32, 8), torch.randn(32, 10))   # metrics["dk"] is a float
"""

from __future__ import annotations

import torch
from torch import nn


def reference_kernel(x: torch.Tensor, kernel: str = "linear") -> torch.Tensor:
    """Centre the columns, normalise the rows with ``row / (‖row‖ + 1e-8)``, build the kernel."""
    x = x - x.mean(dim=0, keepdim=True)
    x = x / (torch.norm(x, dim=1, keepdim=True) + 1e-8)
    if kernel == "linear":
        return x @ x.T
    if kernel == "rbf":
        return torch.exp(-torch.cdist(x, x).square())
    raise ValueError(f"unknown kernel {kernel!r}")


def reference_aft_distance(phi: torch.Tensor, psi: torch.Tensor, mu: torch.Tensor | None = None,
                           kernel: str = "linear") -> torch.Tensor:
    """``sqrt(mean((K(Φ) − K(Ψ diag μ))²) + 1e-8)`` written out step by step."""
    teacher = psi.detach() if mu is None else psi.detach() * mu
    k_student = reference_kernel(phi, kernel)
    k_teacher = reference_kernel(teacher, kernel)
    return torch.sqrt(((k_student - k_teacher) ** 2).mean() + 1e-8)


class ReferenceAFT(nn.Module):
    """The baseline AFT module: ``μ = sigmoid(s)`` with ``s`` zeros-initialised, the distance
    from :func:`reference_aft_distance`, and ``metrics = {"dk": float}`` via ``.item()``."""

    def __init__(self, teacher_dim: int, kernel: str = "linear") -> None:
        super().__init__()
        self.s = nn.Parameter(torch.zeros(teacher_dim))
        self.kernel = kernel

    def forward(self, phi: torch.Tensor, psi: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        dk = reference_aft_distance(phi, psi.to(phi.dtype), torch.sigmoid(self.s).to(phi.dtype), self.kernel)
        return dk, {"dk": dk.item()}
