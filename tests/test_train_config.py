"""TrainConfig validation, step counting, the cosine schedule and up-front refusals."""

from __future__ import annotations

import math

import pytest
import torch

from fusion_aft.errors import UserInputError
from fusion_aft.training import TrainConfig, load_config, train
from fusion_aft.training.config import resolve_steps, steps_per_epoch
from fusion_aft.training.sampler import StepBatchSampler, Stream
from fusion_aft.training.schedule import cosine_factor, make_scheduler

BASE = {"dataset": "rotten_tomatoes", "student": "text_bow"}


def test_defaults_follow_the_paper_protocol() -> None:
    cfg = TrainConfig(**BASE)
    assert cfg.batch_size == 128 and cfg.weight_decay == 0.0 and cfg.schedule == "cosine"
    assert cfg.beta_grid == [0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]
    assert cfg.final_steps == "sweep" and cfg.beta_metric == "cross_entropy"
    assert cfg.holdout_fraction == 0.1 and not cfg.augment


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"beta": -1.0}, "beta"),
        ({"beta": "often"}, "beta must be a number >= 0 or 'auto'"),
        ({"steps": 0}, "steps must be > 0"),
        ({"steps": 10, "epochs": 2}, "either steps or epochs"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"n_labels": 10, "n_unlabelled": 5, "use_unlabelled": False}, "use_unlabelled"),
        ({"n_unlabelled": 5}, "n_unlabelled needs n_labels"),
        ({"beta_grid": []}, "beta_grid is empty"),
        ({"teachers": ["a", "a"]}, "listed twice"),
        ({"device": "tpu"}, "device must be"),
    ],
)
def test_bad_configs_are_refused_with_the_key_named(overrides: dict, needle: str) -> None:
    with pytest.raises(UserInputError, match="invalid training config") as info:
        load_config(BASE, **overrides)
    assert needle in str(info.value)


def test_beta_accepts_auto_and_numeric_strings() -> None:
    assert load_config(BASE, beta="auto").beta == "auto"
    assert load_config(BASE, beta="0.3").beta == 0.3
    assert load_config(BASE, teachers="a, b").teachers == ["a", "b"]


def test_toml_config_with_overrides(tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[train]\ndataset = "emoji"\nstudent = "mlp"\nlr = 0.01\nsteps = 7\n')
    cfg = load_config(path, lr=0.5)
    assert (cfg.dataset, cfg.student, cfg.lr, cfg.steps) == ("emoji", "mlp", 0.5, 7)


def test_default_steps_round_up_to_whole_epochs() -> None:
    cfg = TrainConfig(**BASE)
    # 300 rows, batch 128 -> 3 batches per epoch (128, 128, 44); 5000 -> 1667 epochs = 5001 steps
    assert steps_per_epoch(300, 128) == 3
    assert resolve_steps(cfg, 300) == 5001
    assert resolve_steps(TrainConfig(**BASE, epochs=2), 300) == 6
    assert resolve_steps(TrainConfig(**BASE, steps=17), 300) == 17
    # a trailing batch of one row is dropped for pair objectives
    assert steps_per_epoch(257, 128, min_batch=2) == 2
    assert steps_per_epoch(257, 128) == 3


def test_sampler_is_a_pure_function_of_the_step() -> None:
    streams = [Stream(10, 4, 0, key=0), Stream(7, 3, 10, key=1)]
    full = list(StepBatchSampler(streams, seed=3, total_steps=9))
    tail = list(StepBatchSampler(streams, seed=3, total_steps=9, start_step=5))
    assert full[5:] == tail
    # each labelled epoch covers every labelled row once (batches of 4, 4, 2)
    epoch = [i for batch in full[:3] for (_, i) in batch if i < 10]
    assert sorted(epoch) == list(range(10))
    for batch in full:  # labelled rows first, then the unlabelled ones
        flags = [i >= 10 for (_, i) in batch]
        assert flags == sorted(flags) and any(flags)
    assert list(StepBatchSampler(streams, seed=4, total_steps=9)) != full


def test_cosine_schedule_decays_every_group() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([{"params": [a], "lr": 1e-3}, {"params": [b], "lr": 1e-2}])
    sched = make_scheduler(opt, "cosine", total_steps=10)
    seen = []
    for _ in range(10):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    for t, (lr_a, lr_b) in enumerate(seen):
        factor = 0.5 * (1 + math.cos(math.pi * t / 10))
        assert lr_a == pytest.approx(1e-3 * factor) and lr_b == pytest.approx(1e-2 * factor)
    assert cosine_factor(10, 10) == pytest.approx(0.0)


def test_augmentation_with_a_teacher_bank_is_refused(tmp_path) -> None:
    with pytest.raises(UserInputError, match="un-augmented"):
        train(**BASE, method="aft", teachers=["glove-6b-50d"], augment=True, out=tmp_path / "run")
    assert not (tmp_path / "run" / "config.json").exists()


def test_transfer_without_teachers_is_refused(tmp_path) -> None:
    with pytest.raises(UserInputError, match="none were given"):
        train(**BASE, method="aft", out=tmp_path / "run")


def test_pair_objective_with_batch_of_one_is_refused(tmp_path) -> None:
    with pytest.raises(UserInputError, match="batch_size >= 2"):
        train(**BASE, method="aft", teachers=["glove-6b-50d"], batch_size=1, out=tmp_path / "run")
