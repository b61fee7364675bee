"""The public names mean one thing whatever was imported first."""

from __future__ import annotations

import subprocess
import sys

import pytest

ORDERS = {
    "function first": "import fusion_aft; f = fusion_aft.train; import fusion_aft.training.run as R",
    "package first": "import fusion_aft.training.run as R; import fusion_aft; f = fusion_aft.train",
    "from-import": "from fusion_aft.training import TrainConfig; import fusion_aft; f = fusion_aft.train; import fusion_aft.training.run as R",
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
