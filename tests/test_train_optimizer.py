"""Optimiser groups: the objective's own lr, and heads that follow the student's lr."""

from __future__ import annotations

import torch

import fusion_aft
from fusion_aft.training.config import TrainConfig
from fusion_aft.training.engine import build_optimizer


def _lrs(method: str, objective_lr: float | None) -> dict[str, float]:
    cfg = TrainConfig(dataset="fashion_mnist", student="mlp", method=method, lr=1e-3,
                      objective_lr=objective_lr, device="cpu")
    student = torch.nn.Linear(4, 3)
    objective = fusion_aft.objectives.create(method, 4, {"a": 6})
    opt = build_optimizer(cfg, student, objective)
    return {g["name"]: g["lr"] for g in opt.param_groups}


def test_aft_mu_has_its_own_lr_and_objective_lr_overrides_it() -> None:
    assert _lrs("aft", None) == {"student": 1e-3, "objective": 1e-2}
    assert _lrs("aft", 5e-2) == {"student": 1e-3, "objective": 5e-2}


def test_heads_that_follow_the_student_keep_its_lr() -> None:
    assert _lrs("kd", None) == {"student": 1e-3, "objective": 1e-3}
    assert _lrs("kd", 5e-2) == {"student": 1e-3, "objective": 1e-3}
