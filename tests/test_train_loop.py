"""The training loop: the logged loss is CE + β·R by hand, unlabelled rows enter R only, and the
cosine schedule decays both optimiser groups. Real data (Rotten Tomatoes), a real teacher
(GloVe-6B-50d from its wheel), a real student (text_bow), a few steps."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

import fusion_aft
from fusion_aft.data.splits import label_budget
from fusion_aft.report import attribution, load_objective
from fusion_aft.training import train
from fusion_aft.training.checkpoint import seed_everything
from fusion_aft.training.sampler import Stream

DATA = {"train_size": 96, "test_size": 64}
STUDENT = {"emb_dim": 16, "hidden": 16, "max_length": 32}
TINY = dict(
    dataset="rotten_tomatoes",
    dataset_options=DATA,
    student="text_bow",
    student_options=STUDENT,
    teachers=["glove-6b-50d"],
    method="aft",
    batch_size=16,
    steps=6,
    log_every=1,
    checkpoint_every=0,
    progress=False,
    use_unlabelled=False,  # labelled rows only, unless a test asks (the dataset has its own unlabelled rows)
)


def _normed(x: torch.Tensor) -> torch.Tensor:
    """docs/design.md §1 steps 2-3: centre each column over the batch, then L2-normalise each row."""
    x = x - x.mean(dim=0, keepdim=True)
    return x / (x.norm(dim=1, keepdim=True) + 1e-8)


def _aft_by_hand(phi: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """AFT at initialisation (μ = 0.5 everywhere), docs/design.md §1 steps 1-5."""
    k_s = _normed(phi) @ _normed(phi).T
    k_t = _normed(psi * 0.5) @ _normed(psi * 0.5).T
    return torch.sqrt(((k_s - k_t) ** 2).mean() + 1e-8)


def _first_step(history: list[dict]) -> dict:
    return next(r for r in history if r.get("phase") == "train" and r["step"] == 0)


def _student_at_init(seed: int):
    seed_everything(seed)
    return fusion_aft.students.create("text_bow", 2, **STUDENT).train()


def test_step0_loss_is_ce_plus_beta_r(tmp_path) -> None:
    beta = 2.5
    result = train(**TINY, beta=beta, seed=3, out=tmp_path / "run")
    first = _first_step(result.history)

    ds = fusion_aft.datasets.load("rotten_tomatoes", **DATA)
    split = ds.split("train")
    student = _student_at_init(3)
    rows = [split[i] for i in Stream(len(split), 16, 0, key=0, min_batch=2).batch(3, 0)]
    with torch.no_grad():
        logits, phi = student(student.collate([student.prepare(r) for r in rows]))
    ce = F.cross_entropy(logits, torch.tensor([r.label for r in rows]))
    bank = fusion_aft.extract(["glove-6b-50d"], ds, "train", progress=False)
    psi = torch.from_numpy(bank.rows([r.id for r in rows]))
    reg = _aft_by_hand(phi, psi)

    assert first["ce"] == pytest.approx(float(ce), rel=1e-5)
    assert first["reg"] == pytest.approx(float(reg), rel=1e-5)
    assert first["loss"] == pytest.approx(float(ce + beta * reg), rel=1e-5)
    assert first["beta"] == beta
    assert 0.0 < result.test_accuracy <= 1.0
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["phase"] == "train"] == list(range(6))
    assert lines[-1]["phase"] == "test" and lines[-1]["accuracy"] == result.test_accuracy


def test_unlabelled_rows_enter_r_but_not_ce(tmp_path) -> None:
    beta = 1.5
    result = train(
        **{**TINY, "batch_size": 8, "use_unlabelled": True},
        beta=beta,
        seed=1,
        n_labels=24,
        n_unlabelled=40,
        unlabelled_batch_size=8,
        out=tmp_path / "run",
    )
    first = _first_step(result.history)
    assert result.summary["n_labelled"] == 24 and result.summary["n_unlabelled"] == 40

    ds = fusion_aft.datasets.load("rotten_tomatoes", **DATA)
    labelled, unlabelled = label_budget(ds.split("train"), 24, seed=1, n_unlabelled=40)
    rows = [labelled[i] for i in Stream(24, 8, 0, key=0).batch(1, 0)]
    rows += [unlabelled[i - 24] for i in Stream(40, 8, 24, key=1).batch(1, 0)]
    assert all(r.label == -1 for r in rows[8:])
    student = _student_at_init(1)
    with torch.no_grad():
        logits, phi = student(student.collate([student.prepare(r) for r in rows]))
    ce_labelled = F.cross_entropy(logits[:8], torch.tensor([r.label for r in rows[:8]]))
    bank = fusion_aft.extract(["glove-6b-50d"], ds, "train", progress=False)
    psi = torch.from_numpy(bank.rows([r.id for r in rows]))
    reg_all = _aft_by_hand(phi, psi)
    reg_labelled_only = _aft_by_hand(phi[:8], psi[:8])

    assert first["ce"] == pytest.approx(float(ce_labelled), rel=1e-5)
    assert first["reg"] == pytest.approx(float(reg_all), rel=1e-5)
    assert abs(float(reg_all) - float(reg_labelled_only)) > 1e-3
    assert first["loss"] == pytest.approx(float(ce_labelled + beta * reg_all), rel=1e-5)


def test_cosine_schedule_on_student_and_objective_groups(tmp_path) -> None:
    total = 8
    result = train(**{**TINY, "steps": total}, beta=1.0, lr=2e-3, objective_lr=0.05, out=tmp_path / "run")
    train_rows = [r for r in result.history if r["phase"] == "train"]
    assert len(train_rows) == total
    for r in train_rows:
        factor = 0.5 * (1 + math.cos(math.pi * r["step"] / total))
        assert r["lr_student"] == pytest.approx(2e-3 * factor, rel=1e-9)
        assert r["lr_objective"] == pytest.approx(0.05 * factor, rel=1e-9)
    # the objective's group really trained: μ moved away from its initial 0.5
    mu = load_objective(result.run_dir).mu
    assert float((mu - 0.5).abs().max()) > 1e-4


def test_beta_zero_is_the_student_alone_weight_for_weight(tmp_path) -> None:
    """AFT at β = 0 trains exactly the run of ``method = "none"``: same weights, no teacher rows
    read, no unlabelled rows drawn, so a β sweep's "off" candidate is the student alone."""
    off = train(**dict(TINY, use_unlabelled=True, beta=0.0, out=tmp_path / "aft0"))
    alone = train(**dict(TINY, method="none", out=tmp_path / "none"))
    a = fusion_aft.load_student(off.run_dir / "student").state_dict()
    b = fusion_aft.load_student(alone.run_dir / "student").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert off.test_accuracy == alone.test_accuracy
    ce_off = [r["ce"] for r in off.history if r.get("phase") == "train"]
    ce_alone = [r["ce"] for r in alone.history if r.get("phase") == "train"]
    assert ce_off == ce_alone and {r["reg"] for r in off.history if r.get("phase") == "train"} == {0.0}
    # no μ was learned, and the report says why instead of naming a method the user did not ask for
    with pytest.raises(fusion_aft.errors.UserInputError, match="chose β = 0") as err:
        attribution(off.run_dir, plot=False)
    assert "holdout accuracy" not in str(err.value)
    # a sweep whose choice was set aside by the accuracy check: the report names it
    path = off.run_dir / "result.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "beta_accuracy_vetoed": 10.0}))
    with pytest.raises(fusion_aft.errors.UserInputError, match="β = 10 had a lower holdout accuracy"):
        attribution(off.run_dir, plot=False)
