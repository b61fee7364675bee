"""Checkpoints that survive a crash at any moment and resume bit for bit.

A checkpoint is a folder ``step-NNNNNNNN/`` holding

* ``student.safetensors`` and ``objective.safetensors``: the weights (safetensors, no pickle);
* ``state.pt``: optimiser, scheduler, grad-scaler and RNG states (torch, CUDA, numpy, python)
  and the sampler position, as tensors and primitive containers only, so it loads with
  ``torch.load(weights_only=True)``.

It is written under a temporary name, flushed, renamed into place, and only then does the
``latest`` pointer (itself replaced atomically) move to it; older folders are removed last. A
crash mid-write therefore leaves the previous checkpoint and pointer valid.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from fusion_aft.fileio import atomic_write_text, fsync_dir

log = logging.getLogger(__name__)

POINTER = "latest"


# -- RNG states ----------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors and primitives (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state(
        (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- checkpoints ---------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    folder: Path
    step: int
    state: dict[str, Any]


def latest(root: Path) -> Path | None:
    """The folder the ``latest`` pointer names, or ``None`` when there is no valid checkpoint."""
    pointer = root / POINTER
    if not pointer.is_file():
        return None
    folder = root / pointer.read_text(encoding="utf8").strip()
    if not (folder / "state.pt").is_file():
        log.warning("checkpoint pointer %s names a missing folder %s; ignoring it", pointer, folder)
        return None
    return folder


def save_checkpoint(
    root: Path,
    step: int,
    student: nn.Module,
    objective: nn.Module,
    state: dict[str, Any],
    keep: int = 1,
) -> Path:
    """Write checkpoint ``step`` atomically and move the pointer to it; keep the last ``keep``."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    final = root / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
    try:
        save_model(student, str(tmp / "student.safetensors"))
        save_model(objective, str(tmp / "objective.safetensors"))
        torch.save({**state, "step": int(step)}, tmp / "state.pt")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():  # the same step written again (a rerun of the last step)
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / POINTER, name + "\n")
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    current = (root / POINTER).read_text(encoding="utf8").strip()
    folders = sorted(p for p in root.glob("step-*") if p.is_dir())
    for stale in folders[: max(len(folders) - keep, 0)]:
        if stale.name != current:
            shutil.rmtree(stale, ignore_errors=True)
    for junk in root.glob(".step-*.tmp"):  # left by a crash mid-write
        shutil.rmtree(junk, ignore_errors=True)


def load_checkpoint(
    folder: Path, student: nn.Module, objective: nn.Module, device: torch.device | str = "cpu"
) -> Checkpoint:
    """Load the weights into ``student``/``objective`` (in place) and return the saved state."""
    load_model(student, str(folder / "student.safetensors"), strict=True, device=str(device))
    load_model(objective, str(folder / "objective.safetensors"), strict=True, device=str(device))
    state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    return Checkpoint(folder, int(state["step"]), state)
