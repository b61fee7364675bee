"""Bad inputs to objectives give one clear UserInputError, never a NaN loss."""

from __future__ import annotations

import functools

import pytest
import torch

import fusion_aft
from fusion_aft.errors import UserInputError
from fusion_aft.objectives import create

DIMS = {"img": 3, "txt": 4}
PAIRWISE = ["aft", "aft_rbf", "aft_dense", "aft_no_kernel", "kkd", "rkd"]
WITH_TEACHERS = [*PAIRWISE, "kd", "ft", "btune"]


@functools.cache
def _ready(name: str):
    """A built (and, where needed, fitted) objective; calls do not change it, so it is shared."""
    obj = create(name, 5, DIMS, **({"max_epochs": 3} if name == "ft" else {}))
    if obj.needs_fit:
        gen = torch.Generator().manual_seed(0)
        obj.fit(torch.randn(60, 7, generator=gen), torch.randint(0, 3, (60,), generator=gen),
                student_features=torch.randn(60, 5, generator=gen))
    return obj


@pytest.mark.parametrize("name", PAIRWISE)
def test_a_batch_of_one_row_is_refused_for_pairwise_objectives(name):
    obj = _ready(name)
    assert obj.needs_pairs
    with pytest.raises(UserInputError, match="at least 2 rows, got 1"):
        obj(torch.randn(1, 5), torch.randn(1, 7))
    loss, _ = obj(torch.randn(2, 5), torch.randn(2, 7))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", WITH_TEACHERS)
def test_wrong_widths_say_what_was_expected(name):
    obj = _ready(name)
    with pytest.raises(UserInputError, match=r"student features have width 6 but 5 was expected"):
        obj(torch.randn(4, 6), torch.randn(4, 7))
    expected = r"teacher features have width 8 but 7 was expected .*img: 3, txt: 4"
    with pytest.raises(UserInputError, match=expected):
        obj(torch.randn(4, 5), torch.randn(4, 8))
    with pytest.raises(UserInputError, match="4 rows but teacher features have 3"):
        obj(torch.randn(4, 5), torch.randn(3, 7))
    with pytest.raises(UserInputError, match="2-D tensor"):
        obj(torch.randn(4, 5, 1), torch.randn(4, 7))
    with pytest.raises(UserInputError, match="needs teacher features"):
        obj(torch.randn(4, 5))


@pytest.mark.parametrize("name", WITH_TEACHERS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_inputs_are_refused(name, bad):
    obj = _ready(name)
    for side in ("student", "teacher"):
        phi, psi = torch.randn(4, 5), torch.randn(4, 7)
        (phi if side == "student" else psi)[1, 2] = bad
        with pytest.raises(UserInputError, match=f"{side} features contain NaN or Inf"):
            obj(phi, psi)


def test_none_checks_student_features_directly():
    obj = create("none", 5, {})
    with pytest.raises(UserInputError, match="student features contain NaN"):
        obj(torch.full((2, 5), float("nan")))


def test_overflowing_features_are_reported_not_returned_as_nan():
    obj = create("aft", 5, DIMS)
    with pytest.raises(UserInputError, match="too large"):
        obj(torch.randn(4, 5) * 1e30, torch.randn(4, 7))


def test_bad_construction_options():
    with pytest.raises(UserInputError, match="unknown kernel 'poly'"):
        create("aft", 5, DIMS, kernel="poly")
    with pytest.raises(UserInputError, match="unknown mu 'full'"):
        create("aft", 5, DIMS, mu="full")
    with pytest.raises(UserInputError, match="unknown compose"):
        create("aft", 5, DIMS, compose="sum")
    with pytest.raises(UserInputError, match="no option 'kernl'; close matches: kernel"):
        create("aft", 5, DIMS, kernl="rbf")
    with pytest.raises(UserInputError, match="teacher_dims is empty"):
        create("aft", 5, {})
    with pytest.raises(UserInputError, match="student_dim must be a positive integer"):
        create("aft", 0, DIMS)
    with pytest.raises(UserInputError, match=r"teacher_dims\['txt'\] must be a positive integer"):
        create("kd", 5, {"img": 3, "txt": -1})
    with pytest.raises(UserInputError, match="ordered mapping"):
        fusion_aft.objectives.get("aft")(5, [3, 4])


@pytest.mark.parametrize("name", ["ft", "btune"])
def test_objectives_that_need_fit_refuse_to_run_unfitted(name):
    obj = create(name, 5, DIMS)
    assert obj.needs_fit
    with pytest.raises(UserInputError, match="must be fitted first"):
        obj(torch.randn(4, 5), torch.randn(4, 7))
