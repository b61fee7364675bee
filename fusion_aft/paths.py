"""Where fusion-aft keeps files: one root, overridable by environment variables.

* ``FUSION_AFT_HOME``: root of everything below (default ``~/.cache/fusion-aft``).
* ``FUSION_AFT_CACHE``: feature banks (default ``$FUSION_AFT_HOME/banks``).
* ``FUSION_AFT_REGISTRY``: the user's own teacher cards (default ``$FUSION_AFT_HOME/registry``).
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("FUSION_AFT_HOME", Path.home() / ".cache" / "fusion-aft")).expanduser()


def bank_cache_dir() -> Path:
    """Default folder of the feature banks."""
    env = os.environ.get("FUSION_AFT_CACHE")
    return Path(env).expanduser() if env else home() / "banks"


def user_registry_dir() -> Path:
    """Folder of user-added teacher cards."""
    env = os.environ.get("FUSION_AFT_REGISTRY")
    return Path(env).expanduser() if env else home() / "registry"


def models_dir() -> Path:
    """Folder of converted or derived model weights (e.g. an ONNX model turned into torch)."""
    return home() / "models"


def package_catalogue_dir() -> Path:
    """The shipped ``registry/`` folder (source tree) or its copy inside the installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "registry", here / "_catalogue"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the teacher catalogue (registry/) is missing from this installation")
