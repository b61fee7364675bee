"""Small helpers shared by the sources."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from fusion_aft.data.select import stratified_choice
from fusion_aft.errors import UserInputError


def subsample(indices: np.ndarray, labels: np.ndarray, size: int | None, seed: int, what: str) -> np.ndarray:
    """``size`` of ``indices`` chosen stratified by ``labels[indices]`` (all when ``size`` is None)."""
    if size is None:
        return indices
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise UserInputError(f"{what} must be a whole number, got {size!r}") from None
    if not 0 < size <= len(indices):
        raise UserInputError(f"{what} must be between 1 and {len(indices)}, got {size}")
    return indices[stratified_choice(labels[indices], size, seed)]


def package_dir(module: str, install: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError(f"the Python package '{module}' is not installed; install it with: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def require_file(path: Path, install: str) -> Path:
    """``path`` if it exists, else a UserInputError naming the install command."""
    if not path.is_file():
        raise UserInputError(f"{path} is missing; install it with: {install}")
    return path


