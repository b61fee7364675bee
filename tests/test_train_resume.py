"""Checkpoints and resume: a killed run, resumed, ends with exactly the uninterrupted weights (CPU),
a different config is refused, and a crash while writing a checkpoint keeps the previous one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fusion_aft.errors import UserInputError
from fusion_aft.training import train
from fusion_aft.training.checkpoint import latest, load_checkpoint, save_checkpoint

KW = dict(
    dataset="rotten_tomatoes",
    dataset_options={"train_size": 96, "test_size": 64},
    student="text_bow",
    student_options={"emb_dim": 16, "hidden": 16, "max_length": 32, "dropout": 0.2},
    teachers=["glove-6b-50d"],
    method="aft",
    beta=2.0,
    seed=5,
    n_labels=48,
    n_unlabelled=32,
    use_unlabelled=True,
    batch_size=8,
    steps=12,
    checkpoint_every=4,
    log_every=1,
    progress=False,
)


class Boom(RuntimeError):
    pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "run"
    train(**KW, out=out)
    return out


def _assert_same_weights(a: Path, b: Path) -> None:
    for rel in ("student/student.safetensors", "objective.safetensors"):
        wa, wb = load_file(a / rel), load_file(b / rel)
        assert wa.keys() == wb.keys()
        for key in wa:
            assert torch.equal(wa[key], wb[key]), f"{rel}:{key} differs after resume"


def _train_losses(run: Path) -> list[float]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in lines if r["phase"] == "train"]


def test_exception_after_step_k_then_resume_is_bit_identical(reference: Path, tmp_path) -> None:
    out = tmp_path / "cut"

    def bomb(event: str, info: dict) -> None:
        if event == "step" and info["done"] == 7:
            raise Boom("injected failure after step 7")

    with pytest.raises(Boom):
        train(**KW, out=out, callbacks=[bomb])
    assert latest(out / "checkpoint").name == "step-00000004"
    assert not (out / "result.json").exists()

    result = train(**KW, out=out, resume=True)
    assert result.summary["resumed_from_step"] == 4
    _assert_same_weights(reference, out)
    assert _train_losses(out) == _train_losses(reference)  # no duplicated or missing steps
    ref_result = json.loads((reference / "result.json").read_text())
    assert result.test_accuracy == ref_result["test_accuracy"]


def test_sigkill_then_resume_is_bit_identical(reference: Path, tmp_path) -> None:
    out = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        torch.set_num_threads(1)
        from fusion_aft.training import train
        def kill(event, info):
            if event == "step" and info["done"] == 10:
                os.kill(os.getpid(), signal.SIGKILL)
        train(**{KW!r}, out={str(out)!r}, callbacks=[kill])
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=dict(os.environ), capture_output=True, timeout=300
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert latest(out / "checkpoint").name == "step-00000008"

    # resumed with DataLoader workers: batches do not depend on the worker count
    train(**KW, out=out, resume=True, num_workers=2)
    _assert_same_weights(reference, out)


def test_resume_with_another_config_names_the_keys(reference: Path) -> None:
    with pytest.raises(UserInputError, match=r"differing keys: .*lr: 0\.001 -> 0\.5.*seed: 5 -> 6"):
        train(**{**KW, "seed": 6}, lr=0.5, out=reference, resume=True)


def test_existing_run_is_not_overwritten_and_finished_run_resumes_instantly(reference: Path) -> None:
    with pytest.raises(UserInputError, match="already holds a run; pass --resume"):
        train(**KW, out=reference)
    before = (reference / "metrics.jsonl").read_text()
    again = train(**KW, out=reference, resume=True, num_workers=0)  # operational keys may change
    assert again.test_accuracy == json.loads((reference / "result.json").read_text())["test_accuracy"]
    assert (reference / "metrics.jsonl").read_text() == before


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    student, objective = torch.nn.Linear(3, 2), torch.nn.Linear(2, 2)
    state = {"rng": {"x": torch.arange(3)}, "total_steps": 10}
    save_checkpoint(tmp_path, 4, student, objective, state)
    saved = {k: v.clone() for k, v in student.state_dict().items()}

    with torch.no_grad():
        student.weight.add_(1.0)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 8, student, objective, state)
    monkeypatch.undo()

    folder = latest(tmp_path)
    assert folder.name == "step-00000004"
    assert not list(tmp_path.glob(".step-*"))  # the half-written folder was removed
    fresh = torch.nn.Linear(3, 2)
    ck = load_checkpoint(folder, fresh, torch.nn.Linear(2, 2))
    assert ck.step == 4 and torch.equal(ck.state["rng"]["x"], torch.arange(3))
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())


def test_a_run_saved_before_newer_keys_resumes_with_their_old_values(tmp_path) -> None:
    """A config.json written before beta_metric / final_steps / beta_zero_unless_better /
    beta_accuracy_guard existed
    resumes under the values that reproduce it, and is refused, naming the key, under others."""
    from fusion_aft.training.config import ADDED_KEYS, load_config
    from fusion_aft.training.run import config_diff

    cfg = load_config(None, **{**KW, **ADDED_KEYS})
    assert cfg.accuracy_guard_se is None and cfg.final_steps == "given"
    saved = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in ADDED_KEYS}
    assert config_diff(saved, cfg) == []
    newer = cfg.model_copy(update={"final_steps": "sweep"})
    assert config_diff(saved, newer) == ["final_steps: 'given' -> 'sweep'"]
