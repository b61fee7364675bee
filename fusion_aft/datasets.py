"""``fusion_aft.datasets``: the public name of the dataset API (implemented in :mod:`fusion_aft.data`).

A real module, so that ``import fusion_aft.datasets`` and ``from fusion_aft.datasets import load``
work as the README writes them; every name is the one of :mod:`fusion_aft.data`.

Example::

    import fusion_aft.datasets
    fusion_aft.datasets.list("fashion*")                  # ['fashion_mnist']
    ds = fusion_aft.datasets.load("my_reviews.csv")      # a path: csv, jsonl or a class folder
"""

from __future__ import annotations

from fusion_aft.data import *  # noqa: F403 - the same public names
from fusion_aft.data import (
    __all__,  # noqa: F401 - `list` stays out, so a star import keeps the builtin
    list,  # noqa: A004, F401 - the public name is `datasets.list()`
)
