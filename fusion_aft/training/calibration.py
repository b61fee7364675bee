"""Holdout cross-entropy after temperature scaling: a score of how well logits rank, not of how
confident they are.

A run's holdout cross-entropy mixes two things: how well its logits order the classes and how
large they are. The second depends on β itself: the student alone, trained on cross-entropy
only, ends over-confident, while a strong regulariser keeps the logits small. Comparing raw
cross-entropies across β therefore favours whichever β happens to give the right scale, and can
choose a β whose holdout accuracy is below the student alone's. Dividing each run's logits by the
one temperature that minimises its holdout cross-entropy (Guo et al. 2017, "On Calibration of
Modern Neural Networks"; the "calibrated log-likelihood" of Ashukha et al. 2020) removes the
scale, and leaves one fitted number per run, the same for every candidate.

With ``s = 1 / T`` the loss ``CE(s) = mean_i [logsumexp(s z_i) - s z_iy]`` is convex in ``s``
(its second derivative is the mean variance of the logits under the softmax), so its minimum
over ``s >= 0`` is found by bisection on the first derivative.
"""

from __future__ import annotations

import math

import torch

__all__ = ["MAX_INVERSE_TEMPERATURE", "calibrated_cross_entropy"]

# s = 1 / T is searched in [0, MAX_INVERSE_TEMPERATURE]: logits that separate the holdout
# perfectly lower the loss without end as s grows, so the search stops at T = 0.01
MAX_INVERSE_TEMPERATURE = 100.0


def _loss_and_slope(logits: torch.Tensor, labels: torch.Tensor, s: float) -> tuple[float, float]:
    scaled = logits * s
    log_p = scaled.log_softmax(-1)
    loss = -log_p.gather(1, labels[:, None]).mean()
    expected = (log_p.exp() * logits).sum(-1)
    slope = (expected - logits.gather(1, labels[:, None]).squeeze(1)).mean()
    return float(loss), float(slope)


@torch.no_grad()
def calibrated_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, iters: int = 60
) -> tuple[float, float]:
    """``(cross-entropy at the best temperature, that temperature)`` of ``logits`` [N, C] for the
    integer ``labels`` [N], in nats per row (float64 throughout).

    Logits no better than chance give ``T = inf`` and ``log C``; logits that separate every row
    give the loss at ``T = 1 / MAX_INVERSE_TEMPERATURE``.
    """
    z = logits.detach().double().cpu()
    y = labels.detach().long().cpu()
    if z.ndim != 2 or y.shape != z.shape[:1] or len(y) == 0:
        raise ValueError(
            f"need logits [N, C] and labels [N] with N > 0, got {tuple(z.shape)} and {tuple(y.shape)}"
        )
    _, slope0 = _loss_and_slope(z, y, 0.0)
    if slope0 >= 0:  # raising s from 0 cannot lower the loss: uniform predictions are best
        return math.log(z.shape[1]), math.inf
    lo, hi = 0.0, 1.0
    loss_hi, slope_hi = _loss_and_slope(z, y, hi)
    while slope_hi < 0 and hi < MAX_INVERSE_TEMPERATURE:  # widen until the minimum is bracketed
        lo, hi = hi, min(2 * hi, MAX_INVERSE_TEMPERATURE)
        loss_hi, slope_hi = _loss_and_slope(z, y, hi)
    if slope_hi < 0:
        return loss_hi, 1.0 / hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if _loss_and_slope(z, y, mid)[1] < 0:
            lo = mid
        else:
            hi = mid
    s = 0.5 * (lo + hi)
    return _loss_and_slope(z, y, s)[0], 1.0 / s
