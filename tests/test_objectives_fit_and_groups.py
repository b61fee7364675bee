"""The objective's optimiser groups (objective_lr, no weight decay on μ) and fits read from the bank."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fusion_aft.bank.joint import BankRows, JointBank
from fusion_aft.bank.synthetic import write_synthetic_bank
from fusion_aft.objectives import create
from fusion_aft.training import TrainConfig
from fusion_aft.training.engine import build_optimizer

DIMS = {"a": 6, "b": 4}


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(dataset="x", student="mlp", lr=1e-3, **kw)


def _groups(method: str, **kw) -> dict[str, dict]:
    obj = create(method, 5, DIMS)
    opt = build_optimizer(_cfg(**kw), torch.nn.Linear(3, 5), obj)
    return {g["name"]: g for g in opt.param_groups}


@pytest.mark.parametrize("method, mu_group", [("aft", "objective"), ("aft_no_kernel", "objective/mu")])
def test_objective_lr_sets_the_lr_of_mu_and_only_of_mu(method: str, mu_group: str) -> None:
    groups = _groups(method, objective_lr=0.05)
    assert groups[mu_group]["lr"] == 0.05
    assert groups["student"]["lr"] == 1e-3
    if method == "aft_no_kernel":
        assert groups["objective/head"]["lr"] == 1e-3  # the projection learns with the student
    assert _groups(method)[mu_group]["lr"] == 1e-2  # mu_lr's default without objective_lr


@pytest.mark.parametrize("method", ["aft", "aft_no_kernel"])
def test_weight_decay_never_moves_mu(method: str) -> None:
    obj = create(method, 5, DIMS)
    student = torch.nn.Linear(3, 5)
    opt = build_optimizer(_cfg(weight_decay=0.5), student, obj)
    with torch.no_grad():
        for p in obj.weights.parameters():
            p.fill_(2.0)
    before = {n: p.detach().clone() for n, p in obj.named_parameters()}
    w_before = student.weight.detach().clone()
    for p in [*student.parameters(), *obj.parameters()]:
        p.grad = torch.zeros_like(p)  # no loss gradient: only decay can move a parameter
    opt.step()
    for name, p in obj.weights.named_parameters():
        assert torch.equal(p, before[f"weights.{name}"]), name
    assert not torch.equal(student.weight, w_before)  # the student is decayed
    if method == "aft_no_kernel":
        assert not torch.equal(obj.proj.weight, before["proj.weight"])


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> JointBank:
    root = tmp_path_factory.mktemp("banks")
    folders = [
        write_synthetic_bank(root / ref, rows=96, width=w, ref=ref, seed=i, dtype="float32")
        for i, (ref, w) in enumerate(DIMS.items())
    ]
    return JointBank.open(folders)


class _Tripwire(BankRows):
    """Counts how many rows × columns were read, and refuses a read of the whole bank at once."""

    def __init__(self, bank: JointBank, ids: list[str]) -> None:
        super().__init__(bank, ids)
        self.widths: list[int] = []

    def block(self, sl: slice) -> torch.Tensor:
        out = super().block(sl)
        assert out.device.type == "cpu" and out.shape[1] < self.shape[1], "the whole bank was read"
        self.widths.append(out.shape[1])
        return out


def test_ft_fits_from_one_teacher_block_at_a_time_as_from_the_whole_tensor(bank: JointBank) -> None:
    ids = bank.ids
    lazy = _Tripwire(bank, ids)
    torch.manual_seed(0)
    from_view = create("ft", 5, DIMS, max_epochs=3)
    torch.manual_seed(0)
    from_tensor = create("ft", 5, DIMS, max_epochs=3)
    from_view.fit(lazy)
    from_tensor.fit(bank.tensor(ids))
    assert lazy.widths == list(DIMS.values())
    for (k, a), (_, b) in zip(from_view.state_dict().items(), from_tensor.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_btune_fits_from_one_teacher_block_at_a_time_as_from_the_whole_tensor(bank: JointBank) -> None:
    ids = bank.ids
    labels = torch.arange(len(ids)) % 3
    labels[::7] = -1  # unlabelled rows are left out of LogME
    phi = torch.randn(len(ids), 5, generator=torch.Generator().manual_seed(1))
    lazy = _Tripwire(bank, ids)
    from_view = create("btune", 5, DIMS, num_classes=3)
    from_tensor = create("btune", 5, DIMS, num_classes=3)
    from_view.fit(lazy, labels, student_features=phi)
    from_tensor.fit(bank.tensor(ids), labels, student_features=phi)
    assert lazy.widths == list(DIMS.values())
    assert torch.allclose(from_view.weights, from_tensor.weights, rtol=1e-12, atol=0)
    assert torch.allclose(from_view.target_map, from_tensor.target_map, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method, options", [("ft", {"max_epochs": 2}), ("btune", {})])
def test_training_never_loads_the_whole_bank(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, method: str, options: dict
) -> None:
    import fusion_aft

    def whole_bank(self, ids, device="cpu"):
        raise AssertionError(f"the whole bank ({len(ids)} rows) was loaded at once")

    monkeypatch.setattr(JointBank, "tensor", whole_bank)  # a tripwire, not a stand-in
    result = fusion_aft.train(
        dataset="rotten_tomatoes", dataset_options={"train_size": 40, "test_size": 20}, student="text_bow",
        teachers=["glove-6b-50d"], method=method, method_options=options, beta=1.0, steps=2, batch_size=8,
        cache_dir=tmp_path / "cache", out=tmp_path / "run", progress=False, device="cpu",
    )  # fmt: skip
    assert 0.0 <= result.test_accuracy <= 1.0 and result.steps == 2
