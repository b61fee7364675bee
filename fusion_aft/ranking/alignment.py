"""Kernel-target alignment: how well the kernel AFT would transfer agrees with the labels.

AFT does not hand the student the teachers' features: it pulls the student's kernel (the cosine
similarities of centred features between rows) towards the teachers' kernel. A subset of
teachers is therefore worth what its kernel says about the labels, which is what the centred
kernel-target alignment measures (Cortes, Mohri & Rostamizadeh, JMLR 2012; Cristianini et al.
2002)::

    A(K, L) = <Kc, Lc>_F / (‖Kc‖_F ‖Lc‖_F),   Kc = H K H,  H = I − 11ᵀ/N,

with ``L = Y Yᵀ`` the label kernel (``Y`` one-hot). A = 1 when the kernel groups the rows exactly
by class. The kernel of a subset is the mean of its teachers' kernels, each the cosine kernel of
the teacher's centred features, the kernel AFT builds (docs/design.md, §1 and "Ranking teachers
before training"). Taking the mean rather than the kernel of the raw concatenation makes the
score independent of each teacher's feature scale (a teacher whose outputs are ten times larger
would otherwise dominate the concatenation, while AFT's learned μ can undo any such scale).

Unlike a probe, the score has no regularisation strength to choose and no model to fit: every
subset of teachers is scored from per-teacher and per-pair sums. Its standard error, and that of
the difference between two subsets, is the delete-a-group jackknife over the cross-validation
folds (Efron & Tibshirani 1993, §11.5).

Example::

    align = FoldedAlignment({"a": xa, "b": xb}, labels, folds=5)
    s = align.score(("a", "b"))
    s.value, s.se                      # alignment of the mean kernel and its jackknife SE
    s.gain_over(align.score(("a",)))   # (difference, its jackknife SE)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from fusion_aft.errors import UserInputError
from fusion_aft.ranking.probe import stratified_folds

__all__ = ["AlignmentScore", "FoldedAlignment", "kernel_alignment"]

#: rows used at most (a seeded stratified draw beyond this): the score is a population statistic
MAX_ROWS = 4000


@dataclass
class AlignmentScore:
    """Kernel-target alignment of one subset's mean kernel.

    Attributes:
        value: alignment on all rows.
        se: delete-a-group jackknife standard error over the folds.
        leave_out: alignment with each fold left out, in fold order.
    """

    value: float
    se: float
    leave_out: list[float] = field(default_factory=list)

    #: gains are reported as plain differences of alignment
    percent = False

    def gain_over(self, other: AlignmentScore) -> tuple[float, float]:
        """``self.value − other.value`` and its jackknife standard error (same folds, paired)."""
        diff = np.asarray(self.leave_out) - np.asarray(other.leave_out)
        return self.value - other.value, _jackknife_se(diff)


def _jackknife_se(leave_out: np.ndarray) -> float:
    k = leave_out.size
    if k < 2:
        return float("inf")
    return float(math.sqrt((k - 1) / k * float(np.sum((leave_out - leave_out.mean()) ** 2))))


def _double_centre(k: torch.Tensor) -> torch.Tensor:
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def _cosine_kernel(x: torch.Tensor) -> torch.Tensor:
    """Cosine kernel of the column-centred rows (AFT's kernel of one teacher)."""
    xc = x - x.mean(0, keepdim=True)
    xn = xc / (xc.norm(dim=1, keepdim=True) + 1e-8)
    return xn @ xn.T


class FoldedAlignment:
    """Alignment of any mean of named teachers' kernels, on all rows and with each fold left out.

    Per row set, every teacher's centred kernel ``Kc_t`` is reduced to ``<Kc_t, Lc>`` and every
    pair to ``<Kc_s, Kc_t>``; a subset ``S`` then scores
    ``Σ_{t∈S} <Kc_t, Lc> / (‖Lc‖ · sqrt(Σ_{s,t∈S} <Kc_s, Kc_t>))`` (the ``1/|S|`` of the mean
    cancels), so all ``2^T − 1`` subsets cost no more than the pairs.
    """

    def __init__(
        self,
        blocks: dict[str, np.ndarray],
        labels: np.ndarray,
        folds: int = 5,
        seed: int = 0,
        max_rows: int = MAX_ROWS,
    ) -> None:
        y = np.asarray(labels, dtype=np.int64)
        if (y < 0).any():
            raise UserInputError("kernel alignment got unlabelled rows (label -1); pass labelled rows only")
        if y.size > max_rows:
            keep = np.sort(np.flatnonzero(stratified_folds(y, math.ceil(y.size / max_rows), seed) == 0))
        else:
            keep = np.arange(y.size)
        y = y[keep]
        #: the rows (indices into the inputs) the score is computed on
        self.rows = keep
        self.names = list(blocks)
        self.n_rows = int(y.size)
        assign = stratified_folds(y, folds, seed=seed)
        # row sets: all rows, then each fold left out
        self._sets = [torch.ones(y.size, dtype=torch.bool)] + [
            torch.as_tensor(assign != f) for f in range(folds)
        ]
        onehot = torch.nn.functional.one_hot(torch.as_tensor(y)).to(torch.float64)
        label_k = onehot @ onehot.T
        kernels = {}
        for name, x in blocks.items():
            t = torch.as_tensor(np.asarray(x)[keep], dtype=torch.float64)
            if t.ndim != 2:
                raise UserInputError(f"kernel alignment needs features [N, D], got {tuple(t.shape)} ({name})")
            if not bool(torch.isfinite(t).all()):
                raise UserInputError(f"kernel alignment got features with NaN or Inf values ({name})")
            kernels[name] = _cosine_kernel(t)
        self._target: dict[str, np.ndarray] = {n: np.empty(len(self._sets)) for n in self.names}
        self._pair: dict[tuple[str, str], np.ndarray] = {}
        self._label_norm = np.empty(len(self._sets))
        for i, rows in enumerate(self._sets):
            lc = _double_centre(label_k[rows][:, rows])
            self._label_norm[i] = float(lc.norm())
            centred = {n: _double_centre(k[rows][:, rows]) for n, k in kernels.items()}
            for a, name in enumerate(self.names):
                self._target[name][i] = float((centred[name] * lc).sum())
                for other in self.names[a:]:
                    value = float((centred[name] * centred[other]).sum())
                    self._pair.setdefault((name, other), np.empty(len(self._sets)))[i] = value
                    self._pair[(other, name)] = self._pair[(name, other)]

    def score(self, names: tuple[str, ...] | list[str]) -> AlignmentScore:
        """Alignment of the mean kernel of ``names``."""
        names = list(names)
        num = sum(self._target[n] for n in names)
        den = np.sqrt(sum(self._pair[(a, b)] for a in names for b in names)) * self._label_norm
        values = num / np.where(den > 0, den, np.inf)
        leave_out = values[1:]
        return AlignmentScore(float(values[0]), _jackknife_se(leave_out), [float(v) for v in leave_out])


def kernel_alignment(features: np.ndarray, labels: np.ndarray) -> float:
    """Centred alignment of the cosine kernel of ``features``' centred rows with the label kernel."""
    return FoldedAlignment({"x": features}, labels, folds=2).score(["x"]).value
