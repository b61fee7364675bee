"""``provenance.json``: which teachers, data, banks, libraries and machine produced a run."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
from typing import Any

import torch

from fusion_aft.versions import library_versions

log = logging.getLogger(__name__)



def _call(obj: Any, name: str) -> Any:
    value = getattr(obj, name, None)
    try:
        return value() if callable(value) else value
    except Exception as exc:  # provenance must never break a finished run
        log.debug("could not read %s: %s", name, exc)
        return None


def teacher_entry(ref: str) -> dict[str, Any]:
    """The card facts of teacher ``ref``: name, ref, kind, model id, revision, licence, width..."""
    import fusion_aft.teachers as teachers

    card = teachers.get(ref)
    return {
        "name": card.name,
        "ref": ref,
        "kind": card.kind,
        "model_id": getattr(card, "model", None),
        "revision": getattr(card, "revision", None),
        "licence": getattr(card, "licence", None),
        "width": int(card.width),
        "params": getattr(card, "parameters", None),
        "fingerprint": _call(card, "fingerprint"),
    }


def bank_entries(bank: Any) -> list[dict[str, Any]]:
    """Folder, rows and fingerprints (teacher, weights, dataset) of each teacher bank of a joint bank."""
    if bank is None:
        return []
    fingerprints = _call(bank, "fingerprints") or {}
    out = []
    for part in getattr(bank, "banks", []):
        ref = getattr(part, "ref", None)
        manifest = getattr(part, "manifest", None)
        shape = getattr(manifest, "shape", None)
        out.append(
            {
                "teacher": ref,
                "folder": str(getattr(part, "folder", "")),
                "rows": int(shape[0]) if shape else None,
                "split": getattr(getattr(manifest, "dataset", None), "split", None),
                "fingerprints": fingerprints.get(ref),
            }
        )
    return out


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def provenance(
    teacher_refs: list[str], dataset: Any, train_split: Any, bank: Any, device: torch.device
) -> dict[str, Any]:
    """The whole ``provenance.json`` record."""
    from fusion_aft.data.fingerprint import dataset_fingerprint

    return {
        "teachers": [teacher_entry(ref) for ref in teacher_refs],
        "dataset": {
            "name": dataset.name,
            "fingerprint": dataset_fingerprint(train_split),
            "classes": list(dataset.classes),
            "options": dict(dataset.meta.get("options", {}) or {}),
        },
        "banks": bank_entries(bank),
        "libraries": library_versions(),
        "machine": machine(),
        "device": str(device),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
