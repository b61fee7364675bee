"""Cross-validated linear probe: how well a linear read-out of frozen features predicts the labels.

The probe is a multinomial logistic regression on standardised features with the penalty of
scikit-learn's ``LogisticRegression(C=c)``: minimise ``C Σ_i CE_i + ½‖W‖²`` (the intercept is not
penalised), solved by L-BFGS (in float32 during cross-validation: accuracy needs no more).
Standardisation statistics come from each fold's training part only. Every labelled row gets one
out-of-fold prediction per repeat, so two feature sets can be compared row by row on the same
folds (:func:`paired_gain`), which is much less noisy than comparing their fold means.

Example::

    x, y = np.random.randn(200, 16), np.random.randint(0, 3, 200)
    score = cv_probe(x, y, folds=5)
    score.accuracy, score.se   # mean out-of-fold accuracy and its standard error
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fusion_aft.errors import UserInputError

__all__ = ["FoldedProbe", "ProbeScore", "cv_probe", "fit_logistic", "paired_gain", "stratified_folds"]


@dataclass
class ProbeScore:
    """Out-of-fold accuracy of one feature set.

    Attributes:
        accuracy: mean out-of-fold accuracy over rows (and repeats).
        se: its standard error over rows, ``sqrt(p(1-p)/N)`` on the per-row correctness.
        fold_accuracy: accuracy of each (repeat, fold), in order.
        correct: ``[N]`` fraction of repeats in which each row was predicted right.
    """

    accuracy: float
    se: float
    fold_accuracy: list[float]
    correct: np.ndarray

    #: gains are reported in percentage points
    percent = True

    @property
    def value(self) -> float:
        """The score forward selection maximises: the out-of-fold accuracy."""
        return self.accuracy

    def gain_over(self, other: ProbeScore) -> tuple[float, float]:
        """Paired per-row accuracy gain over ``other`` and its standard error (:func:`paired_gain`)."""
        return paired_gain(self, other)


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold index ``0 … folds−1`` of every row, each class dealt round-robin after a seeded shuffle."""
    labels = np.asarray(labels)
    counts = np.bincount(labels) if labels.size else np.zeros(0, dtype=int)
    present = counts[counts > 0]
    if folds < 2:
        raise UserInputError(f"cross-validation needs at least 2 folds, got {folds}")
    if present.size < 2:
        raise UserInputError("the probe needs at least two classes among the labelled rows")
    if labels.size < folds:
        raise UserInputError(
            f"{labels.size} labelled rows cannot be split into {folds} folds; use fewer folds"
        )
    rng = np.random.default_rng(seed)
    out = np.empty(labels.size, dtype=np.int64)
    offset = 0
    for cls in np.flatnonzero(counts):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        out[rows] = (np.arange(rows.size) + offset) % folds
        offset += rows.size  # continue the deal so small classes do not all land in fold 0
    return out


def _standardise(train: torch.Tensor, other: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = train.mean(0)
    std = train.std(0, unbiased=False)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return (train - mean) / std, (other - mean) / std


def _row_space(grams: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and test rows in the basis of the training rows' span, from linear kernels.

    With ``K = X_tr X_trᵀ = U Λ Uᵀ`` the penalised optimum ``W`` lies in the span of the training
    rows, so fitting on ``Z_tr = U Λ^½`` (``X_tr`` in that basis) with ``Z_te = X_te X_trᵀ U Λ^-½``
    gives the same logits and penalty as fitting on ``X`` itself, with N instead of D columns.
    ``grams`` holds ``(X_tr X_trᵀ, X_te X_trᵀ)`` of column blocks whose union is ``X``.
    """
    k_tr = sum(g[0] for g in grams)
    k_te = sum(g[1] for g in grams)
    evals, u = torch.linalg.eigh(k_tr)
    keep = evals > evals.max().clamp_min(1e-300) * evals.shape[0] * torch.finfo(evals.dtype).eps
    evals, u = evals[keep], u[:, keep]
    root = evals.sqrt()
    return u * root, (k_te @ u) / root


def fit_logistic(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, c: float = 1.0, max_iter: int = 200
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``[D, C]`` and intercept ``[C]`` minimising ``C Σ CE + ½‖W‖²`` (L-BFGS, in x's dtype)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each step is a small matmul: extra threads only wait on each other
    try:
        return _lbfgs(x, y, num_classes, c, max_iter)
    finally:
        torch.set_num_threads(threads)


def _lbfgs(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, c: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = x.shape
    w = torch.zeros(d, num_classes, dtype=x.dtype, requires_grad=True)
    b = torch.zeros(num_classes, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-6,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    scale = 1.0 / (c * n)  # the objective divided by C·N keeps its size independent of N

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (
            torch.nn.functional.cross_entropy(x @ w + b, y, reduction="mean") + 0.5 * scale * w.square().sum()
        )
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


class FoldedProbe:
    """Cross-validated probes of any union of named feature blocks on shared folds.

    Standardisation is per column, so the linear kernel of a union of blocks is the sum of the
    blocks' kernels: each block's kernels are computed once per fold and every subset of blocks
    is then scored from their sums (used when the union is wider than the training part).
    """

    def __init__(
        self,
        blocks: dict[str, np.ndarray],
        labels: np.ndarray,
        folds: int = 5,
        repeats: int = 1,
        seed: int = 0,
        c: float = 1.0,
        max_iter: int = 100,
    ) -> None:
        y_np = np.asarray(labels, dtype=np.int64)
        if (y_np < 0).any():
            raise UserInputError("the probe got unlabelled rows (label -1); pass labelled rows only")
        self.blocks: dict[str, torch.Tensor] = {}
        for name, x in blocks.items():
            t = torch.as_tensor(np.asarray(x), dtype=torch.float32)  # accuracy needs no more
            if t.ndim != 2 or t.shape[0] != y_np.size:
                raise UserInputError(
                    f"probe needs features [N, D] and labels [N], got {tuple(t.shape)} and "
                    f"{y_np.shape} ({name})"
                )
            if not bool(torch.isfinite(t).all()):
                raise UserInputError(f"the probe got features with NaN or Inf values ({name})")
            self.blocks[name] = t
        self.y_np = y_np
        self.y = torch.as_tensor(y_np)
        self.num_classes = int(y_np.max()) + 1 if y_np.size else 0
        self.c, self.max_iter, self.repeats = c, max_iter, repeats
        self.masks = [
            torch.as_tensor(assign == k)
            for assign in (stratified_folds(y_np, folds, seed=seed + r) for r in range(repeats))
            for k in range(folds)
        ]
        self._std: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._gram: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def _standardised(self, f: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if (f, name) not in self._std:
            test = self.masks[f]
            self._std[(f, name)] = _standardise(self.blocks[name][~test], self.blocks[name][test])
        return self._std[(f, name)]

    def _kernels(self, f: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if (f, name) not in self._gram:
            tr, te = self._standardised(f, name)
            self._gram[(f, name)] = (tr @ tr.T, te @ tr.T)
        return self._gram[(f, name)]

    def score(self, names: tuple[str, ...] | list[str]) -> ProbeScore:
        """Out-of-fold accuracy of the concatenation of ``names``."""
        names = list(names)
        width = sum(self.blocks[n].shape[1] for n in names)
        correct = np.zeros(self.y_np.size)
        fold_acc: list[float] = []
        for f, test in enumerate(self.masks):
            n_train = int((~test).sum())
            if width <= n_train:
                parts = [self._standardised(f, n) for n in names]
                xtr, xte = torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)
            else:
                xtr, xte = _row_space([self._kernels(f, n) for n in names])
            w, b = fit_logistic(xtr, self.y[~test], self.num_classes, c=self.c, max_iter=self.max_iter)
            hit = ((xte @ w + b).argmax(1) == self.y[test]).numpy()
            correct[test.numpy()] += hit
            fold_acc.append(float(hit.mean()))
        correct /= self.repeats
        acc = float(correct.mean())
        se = math.sqrt(max(acc * (1 - acc), 0.0) / self.y_np.size)
        return ProbeScore(accuracy=acc, se=se, fold_accuracy=fold_acc, correct=correct)


def cv_probe(
    features: np.ndarray,
    labels: np.ndarray,
    folds: int = 5,
    repeats: int = 1,
    seed: int = 0,
    c: float = 1.0,
    max_iter: int = 100,
) -> ProbeScore:
    """Stratified ``folds``-fold cross-validated probe accuracy, ``repeats`` times with new folds."""
    return FoldedProbe({"x": features}, labels, folds, repeats, seed, c, max_iter).score(["x"])


def paired_gain(new: ProbeScore, old: ProbeScore) -> tuple[float, float]:
    """Mean per-row accuracy gain of ``new`` over ``old`` (same rows and folds) and its standard error."""
    d = new.correct - old.correct
    if d.size < 2:
        return float(d.mean()), float("inf")
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
