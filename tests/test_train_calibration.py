"""The holdout cross-entropy at the best temperature: the minimum over T of the cross-entropy of
logits / T, checked against a dense grid of temperatures, and its edge cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fusion_aft.training.calibration import MAX_INVERSE_TEMPERATURE, calibrated_cross_entropy


def _by_grid(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    temps = torch.logspace(-2, 2, 40001, dtype=torch.float64)
    losses = torch.stack([F.cross_entropy(logits.double() / t, labels) for t in temps])
    i = int(losses.argmin())
    return float(losses[i]), float(temps[i])


@pytest.mark.parametrize("scale", [0.2, 1.0, 6.0])
def test_equals_the_minimum_over_a_dense_grid_of_temperatures(scale: float) -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (300,), generator=g)
    logits = torch.randn(300, 4, generator=g, dtype=torch.float64)
    logits[torch.arange(300), labels] += 1.5
    logits = logits * scale
    loss, temp = calibrated_cross_entropy(logits, labels)
    grid_loss, grid_temp = _by_grid(logits, labels)
    # never above the grid's best, and the grid's spacing leaves at most a few 1e-8 below it
    assert grid_loss - 1e-7 <= loss <= grid_loss + 1e-12
    assert temp == pytest.approx(grid_temp, rel=1e-3)
    assert loss <= float(F.cross_entropy(logits.double(), labels)) + 1e-12
    # the scale of the logits is what the temperature takes away
    assert calibrated_cross_entropy(logits * 3, labels)[0] == pytest.approx(loss, abs=1e-9)


def test_logits_no_better_than_chance_give_log_c() -> None:
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    logits = torch.zeros(6, 3)
    logits[torch.arange(6), (labels + 1) % 3] = 2.0  # always wrong
    loss, temp = calibrated_cross_entropy(logits, labels)
    assert loss == pytest.approx(math.log(3)) and math.isinf(temp)


def test_separable_logits_end_near_zero_at_a_small_temperature() -> None:
    labels = torch.tensor([0, 1, 1, 0])
    logits = F.one_hot(labels, 2).float()
    loss, temp = calibrated_cross_entropy(logits, labels)
    # the loss falls without end as T shrinks: the search stops where float64 reads it as flat,
    # and never below T = 1 / MAX_INVERSE_TEMPERATURE
    assert 1 / MAX_INVERSE_TEMPERATURE <= temp < 0.05 and 0 <= loss < 1e-12


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="logits"):
        calibrated_cross_entropy(torch.zeros(3), torch.zeros(3, dtype=torch.long))
