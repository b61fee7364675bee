"""The objective registry: names, creation, duplicates, unknown names, plugins and docs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import fusion_aft
from fusion_aft.errors import DuplicateNameError, UnknownNameError
from fusion_aft.objectives import OBJECTIVES, Objective, create, register_objective

NAMES = ["aft", "aft_dense", "aft_no_kernel", "aft_rbf", "btune", "ft", "kd", "kkd", "none", "rkd"]


def test_list_prints_all_ten_names_from_a_fresh_interpreter():
    out = subprocess.run([sys.executable, "-c", "import fusion_aft; print(fusion_aft.objectives.list())"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(NAMES)
    assert fusion_aft.objectives.list() == NAMES
    assert fusion_aft.objectives.list("aft*") == NAMES[:4]


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownNameError, match="unknown objective 'atf'; close matches: aft"):
        create("atf", 4, {"a": 3})


def test_duplicate_registration_is_an_error():
    with pytest.raises(DuplicateNameError, match="objective 'aft' is already registered"):
        @register_objective("aft")
        class Other(Objective):
            pass


def test_a_user_objective_registers_and_builds():
    @fusion_aft.register_objective("test_cosine_kd")
    class CosineKD(Objective):
        """Cosine distance between the student and a slice of the teacher."""

        def compute(self, student, teacher):
            loss = 1 - torch.nn.functional.cosine_similarity(student, teacher[:, : student.shape[1]]).mean()
            return loss, {"cos": loss.detach()}

    try:
        obj = create("test_cosine_kd", 3, {"a": 5})
        assert obj.name == "test_cosine_kd"
        assert obj.config() == {"name": "test_cosine_kd", "student_dim": 3, "teacher_dims": {"a": 5},
                                "options": {}}
        loss, _ = obj(torch.ones(2, 3), torch.ones(2, 5))
        assert float(loss) == pytest.approx(0.0, abs=1e-6)
    finally:
        OBJECTIVES.unregister("test_cosine_kd")
    assert "test_cosine_kd" not in fusion_aft.objectives.list()


@pytest.mark.parametrize("name", NAMES)
def test_every_objective_is_documented_and_rebuildable(name):
    cls = fusion_aft.objectives.get(name)
    doc = cls.__doc__ or ""
    for part in ("Args:", "Inputs:", "Example::"):
        assert part in doc, f"{name} docstring lacks {part}"
    obj = create(name, 4, {"a": 3, "b": 2})
    assert obj.name == name
    rebuilt = fusion_aft.objectives.from_config(obj.config())
    assert type(rebuilt) is cls and rebuilt.config() == obj.config()
    assert set(rebuilt.state_dict()) == set(obj.state_dict())


def _example(doc: str) -> str:
    lines = doc.split("Example::", 1)[1].splitlines()[1:]
    block = [line for line in lines if line.strip()]
    indent = min(len(line) - len(line.lstrip()) for line in block)
    return "\n".join(line[indent:] for line in lines).strip()


@pytest.mark.parametrize("name", NAMES)
def test_docstring_examples_run(name):
    code = _example(fusion_aft.objectives.get(name).__doc__)
    exec(compile(code, f"<{name} example>", "exec"), {"torch": torch, "fusion_aft": fusion_aft})
