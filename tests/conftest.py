"""Shared test set-up: offline, few threads, and a private fusion-aft home per test session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _fusion_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep banks, converted models and user cards out of the user's real home."""
    root = tmp_path_factory.mktemp("fusion_home")
    os.environ.setdefault("FUSION_AFT_HOME", str(root))
    os.environ.pop("FUSION_AFT_CACHE", None)
    os.environ.pop("FUSION_AFT_REGISTRY", None)
