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


def write_reviews_csv(folder, n_lab: int = 40, n_unl: int = 12):
    """``reviews.csv`` in ``folder``: ``n_lab`` labelled rows (``l0``…, alternating neg/pos) and
    ``n_unl`` rows with an empty label (``u0``…), the shape of a user's partly labelled file."""
    rows = ["id,text,label"]
    rows += [
        f"l{i},{'good fine film' if i % 2 else 'bad dull plot'} number {i},{'pos' if i % 2 else 'neg'}"
        for i in range(n_lab)
    ]
    rows += [f"u{i},an unlabelled review {i}," for i in range(n_unl)]
    path = folder / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def reviews_csv(tmp_path):
    """The path of a fresh :func:`write_reviews_csv` file (40 labelled, 12 unlabelled rows)."""
    return write_reviews_csv(tmp_path)
