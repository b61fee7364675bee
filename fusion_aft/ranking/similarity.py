"""Linear CKA: how much two teachers say the same thing about the same rows.

Centred kernel alignment (Kornblith et al., ICML 2019) of the linear kernels ``K = XXᵀ`` and
``L = YYᵀ`` of two feature sets on the same ``N`` rows, after centring each column:

    CKA(X, Y) = ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)  =  ⟨HKH, HLH⟩ / (‖HKH‖ ‖HLH‖).

It is 1 for identical features, invariant to orthogonal transforms and isotropic scaling of
either side, and near 0 for unrelated features. Two teachers with a high CKA bring little to each
other; a pair with a low CKA can be complementary (if both are also good at the task).

Example::

    x = np.random.randn(100, 8)
    linear_cka(x, x)            # 1.0
    linear_cka(x, 3 * x @ q)    # 1.0 for any orthogonal q
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["cka_matrix", "linear_cka"]


def _gram_norm(a: np.ndarray, b: np.ndarray) -> float:
    """``‖aᵀb‖²_F`` computed in whichever of the feature or row space is smaller."""
    n = a.shape[0]
    if a.shape[1] * b.shape[1] <= n * n:
        return float(np.square(a.T @ b).sum())
    return float(np.sum((a @ a.T) * (b @ b.T)))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of ``x [N, Dx]`` and ``y [N, Dy]`` (float64); 0 when either side is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs two feature sets on the same rows, got {x.shape} and {y.shape}")
    x = x - x.mean(0)
    y = y - y.mean(0)
    xy = _gram_norm(x, y)
    xx = _gram_norm(x, x)
    yy = _gram_norm(y, y)
    if xx <= 0 or yy <= 0:
        return 0.0
    return float(xy / np.sqrt(xx * yy))


def cka_matrix(features: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Names and the symmetric ``[T, T]`` matrix of pairwise linear CKA (1 on the diagonal)."""
    names = list(features)
    out = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            out[i, j] = out[j, i] = linear_cka(features[names[i]], features[names[j]])
    return names, out
