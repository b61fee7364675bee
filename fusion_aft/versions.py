"""Versions of the libraries that shape features and results, recorded in manifests and reports.

One fixed list, whatever happens to be imported in the process, so two processes of one job
(or two runs on one machine) write the same record.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

LIBRARIES = (
    "fusion-aft",
    "torch",
    "torchvision",
    "numpy",
    "timm",
    "transformers",
    "sentence-transformers",
    "open_clip_torch",
    "safetensors",
    "pillow",
    "scikit-learn",
    "pydantic",
)


def library_versions() -> dict[str, str]:
    """``{"python": ..., distribution: version}`` for every installed library of :data:`LIBRARIES`."""
    out = {"python": platform.python_version()}
    for dist in LIBRARIES:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
