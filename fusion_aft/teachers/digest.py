"""Cheap, stable digests of teacher weights (recorded in feature-bank manifests).

File digests are sha256 of the bytes, cached in ``models_dir()/digests.json`` by (path, size,
mtime) so a 100 MB file is hashed once per change. In-memory weights are hashed tensor by tensor.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock

from fusion_aft import paths
from fusion_aft.fileio import atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["combine", "file_digest", "files_digest", "state_dict_digest"]

_MEMORY: dict[tuple[str, int, int], str] = {}


def _cache_file() -> Path:
    return paths.models_dir() / "digests.json"


def file_digest(path: str | Path) -> str:
    """sha256 hex of a file, cached by resolved path, size and mtime."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key in _MEMORY:
        return _MEMORY[key]
    cache_key = f"{key[0]}|{key[1]}|{key[2]}"
    cache = _cache_file()
    try:
        stored = json.loads(cache.read_text()) if cache.exists() else {}
    except (OSError, ValueError):
        stored = {}
    digest = stored.get(cache_key)
    if digest is None:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        _store(cache, cache_key, digest)
    _MEMORY[key] = digest
    return digest


def _store(cache: Path, key: str, digest: str) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache) + ".lock"):
            try:
                stored = json.loads(cache.read_text()) if cache.exists() else {}
            except ValueError:
                stored = {}
            stored[key] = digest
            atomic_write_text(cache, json.dumps(stored, indent=0, sort_keys=True))
    except OSError as exc:  # a read-only home only costs re-hashing
        log.debug("could not cache digest in %s: %s", cache, exc)


def files_digest(files: Iterable[str | Path], root: str | Path | None = None) -> str:
    """Digest of several files (a model folder): relative names and contents, order-free."""
    items = []
    for f in files:
        name = str(Path(f).relative_to(root)) if root is not None else Path(f).name
        items.append(f"{name}:{file_digest(f)}")
    return combine(sorted(items))


def folder_digest(folder: str | Path) -> str:
    """Digest of every regular file below ``folder``."""
    folder = Path(folder)
    return files_digest([p for p in folder.rglob("*") if p.is_file()], root=folder)


def combine(parts: Iterable[str]) -> str:
    """sha256 hex of several strings joined unambiguously."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def state_dict_digest(obj: Any) -> str:
    """sha256 hex of a module's (or tensor dict's) weights, by name, dtype, shape and bytes."""
    import torch

    state = obj.state_dict() if hasattr(obj, "state_dict") else dict(obj)
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
