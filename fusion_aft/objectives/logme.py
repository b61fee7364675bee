"""LogME: the log marginal evidence of a Bayesian linear model on frozen features.

You, Liu, Wang, Long, "LogME: Practical Assessment of Pre-trained Models for Transfer
Learning", ICML 2021 (the fixed-point algorithm of its §4). For features ``F ∈ R^{N×D}``
and, per class ``c``, the one-hot target ``y_c ∈ {0,1}^N``, the model ``y = F w + ε`` with
``w ~ N(0, α⁻¹I)`` and ``ε ~ N(0, β⁻¹I)`` has evidence

    log p(y | α, β) = D/2 log α + N/2 log β − N/2 log 2π − β/2 ‖y − F m‖² − α/2 ‖m‖² − ½ log|A|,

``A = αI + βFᵀF``, posterior mean ``m = β A⁻¹ Fᵀ y``. α and β are maximised by the fixed-point
iteration ``α ← γ/‖m‖²``, ``β ← (N − γ)/‖y − Fm‖²`` with ``γ = Σ σ_i/(σ_i + α/β)`` over the
eigenvalues σ of ``FᵀF``; everything is done in the SVD basis of ``F``. The score is the
evidence per sample, averaged over the classes. All classes are solved at once, in float64.

Unlike the authors' code, ``log|A|`` counts the ``D − rank(F)`` zero eigenvalues (``log α``
each), so the value is the exact evidence also when ``D > N``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fusion_aft.errors import UserInputError

#: added to the denominators of the α, β updates (as in the authors' code)
_UPDATE_EPS = 1e-5


@dataclass
class LogMEResult:
    """The output of :func:`logme`.

    Attributes:
        evidence: the LogME score, mean over classes of the per-sample log evidence.
        class_evidence: ``[C]`` per-sample log evidence of each class's one-hot target.
        weights: ``[C, D]`` posterior-mean weights ``m`` (row ``c`` predicts class ``c``).
        alpha: ``[C]`` fitted prior precisions.
        beta: ``[C]`` fitted noise precisions.
        iterations: fixed-point iterations run.
    """

    evidence: float
    class_evidence: torch.Tensor
    weights: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    iterations: int


def _spectrum(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD ``F = U diag(s) Vᵀ`` restricted to the rank ``k``: ``(s [k], V [D, k], Uᵀ [k, N])``."""
    n, d = f.shape
    if n > d:  # the D×D eigenproblem is cheaper than an N×D SVD
        evals, v = torch.linalg.eigh(f.T @ f)
        evals, v = evals.flip(0), v.flip(1)
        s = evals.clamp_min(0).sqrt()
    else:
        _, s, vh = torch.linalg.svd(f, full_matrices=False)
        v = vh.T
    tol = s.max().clamp_min(torch.finfo(s.dtype).tiny) * max(n, d) * torch.finfo(s.dtype).eps
    keep = s > tol
    s, v = s[keep], v[:, keep]
    ut = (f @ v / s).T  # [k, N]
    return s, v, ut


def _terms(sigma: torch.Tensor, x2: torch.Tensor, res_x2: torch.Tensor, t: torch.Tensor):
    """γ, ‖m‖² and ‖y − Fm‖² at ``t = α/β`` (each ``[C]``)."""
    st = sigma.unsqueeze(1) + t.unsqueeze(0)  # [k, C]
    gamma = (sigma.unsqueeze(1) / st).sum(0)
    m2 = (sigma.unsqueeze(1) * x2 / st.square()).sum(0)
    res2 = (x2 * (t.unsqueeze(0) / st).square()).sum(0) + res_x2
    return gamma, m2, res2


def logme(features: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None, *,
          max_iter: int = 100, tol: float = 1e-3) -> LogMEResult:
    """LogME of ``features [N, D]`` for integer ``labels [N]`` (values ``0 … C−1``).

    Args:
        features: the frozen features (any float dtype; computed in float64).
        labels: class indices; every row must be labelled.
        num_classes: ``C`` (default ``labels.max() + 1``).
        max_iter: most fixed-point iterations.
        tol: stop when every class's ``α/β`` changed by at most this relative amount.

    Example::

        res = logme(torch.randn(100, 16), torch.randint(0, 3, (100,)))
        res.evidence, res.weights.shape   # (float, torch.Size([3, 16]))
    """
    f = torch.as_tensor(features).detach().to(torch.float64)
    y = torch.as_tensor(labels).detach().to(device=f.device, dtype=torch.long)
    if f.ndim != 2 or y.ndim != 1 or y.shape[0] != f.shape[0]:
        raise UserInputError(f"logme needs features [N, D] and labels [N], got {tuple(f.shape)} and "
                             f"{tuple(y.shape)}")
    n, d = f.shape
    if n < 2:
        raise UserInputError(f"logme needs at least 2 labelled rows, got {n}")
    if bool((y < 0).any()):
        raise UserInputError("logme got negative labels; pass labelled rows only")
    if not bool(torch.isfinite(f).all()):
        raise UserInputError("logme got features with NaN or Inf values")
    c = int(num_classes) if num_classes is not None else int(y.max()) + 1
    if int(y.max()) >= c:
        raise UserInputError(f"logme: label {int(y.max())} is out of range for num_classes={c}")
    targets = torch.nn.functional.one_hot(y, c).to(torch.float64)  # [N, C]

    s, v, ut = _spectrum(f)
    k = s.shape[0]
    sigma = s.square()
    x = ut @ targets  # [k, C]
    x2 = x.square()
    res_x2 = (targets.square().sum(0) - x2.sum(0)).clamp_min(0.0)

    alpha = torch.ones(c, dtype=torch.float64, device=f.device)
    beta = torch.ones_like(alpha)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007
        t = alpha / beta
        gamma, m2, res2 = _terms(sigma, x2, res_x2, t)
        alpha = gamma / (m2 + _UPDATE_EPS)
        beta = (n - gamma) / (res2 + _UPDATE_EPS)
        if bool(((alpha / beta - t).abs() / t <= tol).all()):
            break

    t = alpha / beta
    _, m2, res2 = _terms(sigma, x2, res_x2, t)
    log_det = torch.log(alpha.unsqueeze(0) + beta.unsqueeze(0) * sigma.unsqueeze(1)).sum(0)
    log_det = log_det + (d - k) * torch.log(alpha)  # the zero eigenvalues of FᵀF
    evidence = (d / 2.0 * torch.log(alpha) + n / 2.0 * torch.log(beta) - 0.5 * log_det - beta / 2.0 * res2
                - alpha / 2.0 * m2 - n / 2.0 * math.log(2 * math.pi)) / n
    m = v @ (s.unsqueeze(1) / (sigma.unsqueeze(1) + t.unsqueeze(0)) * x)  # [D, C]
    return LogMEResult(evidence=float(evidence.mean()), class_evidence=evidence, weights=m.T.contiguous(),
                       alpha=alpha, beta=beta, iterations=iterations)
