"""Training: the loop, β tuning by cross-validation, checkpoints and resume, the run folder.

Example::

    import fusion_aft
    result = fusion_aft.train(dataset="rotten_tomatoes", student="text_bow", method="aft",
                              teachers=["all-minilm-l6-v2", "paraphrase-minilm-l3-v2"],
                              beta="auto", n_labels=500, use_unlabelled=True, out="runs/rt-aft")
    result.test_accuracy, result.beta, result.run_dir
"""

from __future__ import annotations

import importlib
from typing import Any

# imported on first use, so that light submodules (``selection``) load without torch
_LAZY: dict[str, str] = {
    "DEFAULT_BETA_GRID": "fusion_aft.training.config",
    "TrainConfig": "fusion_aft.training.config",
    "load_config": "fusion_aft.training.config",
    "TrainResult": "fusion_aft.training.run",
    "train": "fusion_aft.training.run",
}

__all__ = ["DEFAULT_BETA_GRID", "TrainConfig", "TrainResult", "load_config", "train"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fusion_aft.training' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
