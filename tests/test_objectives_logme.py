"""LogME (You et al. 2021) against a direct evaluation of the marginal likelihood it maximises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fusion_aft.errors import UserInputError
from fusion_aft.objectives.logme import logme


def direct_log_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """``log N(y | 0, α⁻¹ F Fᵀ + β⁻¹ I) / N`` evaluated densely."""
    n = f.shape[0]
    cov = f @ f.T / alpha + np.eye(n) / beta
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0
    return float(-0.5 * (n * math.log(2 * math.pi) + logdet + y @ np.linalg.solve(cov, y)) / n)


@pytest.mark.parametrize(("n", "d"), [(40, 6), (12, 30)])  # N > D and D > N (rank-deficient FᵀF)
def test_evidence_equals_the_marginal_likelihood_at_the_fitted_alpha_beta(n, d):
    """With D > N the features fit every target exactly, the evidence grows without bound in β
    and the iteration stops where LogME's 1e-5 guard holds it; only with N > D is the fitted
    point the maximum."""
    rng = np.random.default_rng(n)
    y = rng.integers(0, 3, size=n)
    y[:3] = [0, 1, 2]
    # features that carry the labels, so that the evidence has an interior maximum in (α, β)
    f = rng.normal(size=(n, d)) + 1.5 * np.eye(3)[y] @ rng.normal(size=(3, d))
    res = logme(torch.tensor(f), torch.tensor(y), max_iter=200, tol=1e-12)
    assert res.weights.shape == (3, d) and res.class_evidence.shape == (3,)
    per_class = []
    for c in range(3):
        yc = (y == c).astype(float)
        a, b = float(res.alpha[c]), float(res.beta[c])
        expected = direct_log_evidence(f, yc, a, b)
        assert float(res.class_evidence[c]) == pytest.approx(expected, rel=1e-9, abs=1e-9)
        per_class.append(expected)
        # m is the posterior mean β A⁻¹ Fᵀ y with A = αI + βFᵀF
        m = b * np.linalg.solve(a * np.eye(d) + b * f.T @ f, f.T @ yc)
        np.testing.assert_allclose(res.weights[c].numpy(), m, rtol=1e-7, atol=1e-10)
        # the fixed point is the maximum: nudging α or β does not increase the evidence
        for da, db in [(1.05, 1.0), (0.95, 1.0), (1.0, 1.05), (1.0, 0.95)] if n > d else []:
            assert direct_log_evidence(f, yc, a * da, b * db) <= expected + 1e-9
    assert res.evidence == pytest.approx(np.mean(per_class), rel=1e-12)


def test_informative_features_score_higher():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, size=200)
    informative = np.eye(4)[y] @ rng.normal(size=(4, 8)) + 0.3 * rng.normal(size=(200, 8))
    noise = rng.normal(size=(200, 8))
    good = logme(torch.tensor(informative), torch.tensor(y)).evidence
    bad = logme(torch.tensor(noise), torch.tensor(y)).evidence
    assert good > bad + 0.1


def test_logme_rejects_bad_input():
    with pytest.raises(UserInputError, match="negative labels"):
        logme(torch.randn(5, 3), torch.tensor([0, 1, -1, 0, 1]))
    with pytest.raises(UserInputError, match="at least 2"):
        logme(torch.randn(1, 3), torch.tensor([0]))
    with pytest.raises(UserInputError, match="NaN"):
        logme(torch.full((4, 3), float("nan")), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(UserInputError, match="out of range"):
        logme(torch.randn(4, 3), torch.tensor([0, 1, 2, 1]), num_classes=2)
