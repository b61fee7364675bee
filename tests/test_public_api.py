"""The public names mean one thing whatever was imported first."""

from __future__ import annotations

import subprocess
import sys

import pytest

ORDERS = {
    "function first": "import fusion_aft; f = fusion_aft.train; import fusion_aft.training.run as R",
    "package first": "import fusion_aft.training.run as R; import fusion_aft; f = fusion_aft.train",
    "from-import": "from fusion_aft.training import TrainConfig; import fusion_aft; f = fusion_aft.train; "
    "import fusion_aft.training.run as R",
}


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_train_is_the_function_and_training_the_package(order: str) -> None:
    code = (
        ORDERS[order]
        + "\nimport inspect, fusion_aft.training as T"
        + "\nassert inspect.isfunction(f) and f is R.train, f"
        + "\nassert inspect.ismodule(T) and T.TrainConfig is fusion_aft.TrainConfig"
        + "\nassert fusion_aft.training.TrainConfig is T.TrainConfig"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_datasets_is_a_module_importable_as_the_readme_writes_it() -> None:
    code = (
        "import fusion_aft.datasets as D\n"
        "from fusion_aft.datasets import load, register_dataset\n"
        "import fusion_aft, fusion_aft.data\n"
        "assert fusion_aft.datasets is D and D.load is fusion_aft.data.load is load\n"
        "assert D.list('fashion*') == ['fashion_mnist'], D.list('fashion*')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("module", ["teachers", "objectives", "students", "datasets"])
def test_list_takes_the_pattern_first_and_never_shadows_the_builtin(module: str) -> None:
    import builtins
    import importlib

    import fusion_aft

    mod = importlib.import_module(f"fusion_aft.{module}")
    everything = mod.list()
    assert everything, module
    first = everything[0]
    pattern = first[:3] + "*"
    assert mod.list(pattern) == [n for n in everything if n.startswith(first[:3])]
    assert first in mod.list(pattern)
    assert "list" not in mod.__all__
    namespace: dict[str, object] = {}
    exec(f"from fusion_aft.{module} import *", namespace)  # noqa: S102 - what a user's star import does
    assert "list" not in namespace
    assert getattr(fusion_aft, module).list is mod.list
    assert builtins.list is list


def test_teacher_list_filters_by_pattern_then_modality() -> None:
    import fusion_aft

    assert fusion_aft.teachers.list("dinov2*")
    assert all(n.startswith("dinov2") for n in fusion_aft.teachers.list("dinov2*"))
    assert fusion_aft.teachers.list("efficientnet*", "text") == []
    assert "efficientnet-lite0" in fusion_aft.teachers.list("efficientnet*", modality="image")


def test_register_teacher_kind_is_exported_and_documented() -> None:
    from pathlib import Path

    import fusion_aft
    from fusion_aft import teachers

    assert fusion_aft.register_teacher_kind is teachers.register_kind
    assert "register_teacher_kind" in fusion_aft.__all__
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "@fusion_aft.register_teacher_kind" in readme


def test_every_public_name_the_readme_writes_resolves() -> None:
    """``fusion_aft.a.b`` in README.md is an attribute chain from the package (or an importable module)."""
    import importlib
    import re
    from pathlib import Path

    import fusion_aft

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    names = set(re.findall(r"fusion_aft(?:\.[A-Za-z_]\w*)+", readme))
    assert {"fusion_aft.teachers.list", "fusion_aft.train", "fusion_aft.register_teacher_kind"} <= names
    for name in sorted(names):
        try:
            importlib.import_module(name)
            continue
        except ImportError:
            pass
        value = fusion_aft
        for part in name.split(".")[1:]:
            value = getattr(value, part)
        assert value is not None, name
