"""Training: the loop, β tuning by cross-validation, checkpoints and resume, the run folder.

Example::

    import fusion_aft
    result = fusion_aft.train(dataset="rotten_tomatoes", student="text_bow", method="aft",
                              teachers=["all-minilm-l6-v2", "paraphrase-minilm-l3-v2"],
                              beta="auto", n_labels=500, use_unlabelled=True, out="runs/rt-aft")
    result.test_accuracy, result.beta, result.run_dir
"""

from __future__ import annotations

from fusion_aft.training.config import DEFAULT_BETA_GRID, TrainConfig, load_config
from fusion_aft.training.run import TrainResult, train

__all__ = ["DEFAULT_BETA_GRID", "TrainConfig", "TrainResult", "load_config", "train"]
