"""Which teachers a finished AFT run could drop, and what dropping them would save.

AFT starts every feature weight at ``μ = 0.5``, so each teacher starts with its column share of
the total μ mass. A teacher whose learned μ share ends far below its column share (by default
below half of it) was mostly switched off: the next run can leave it out and save its extraction
time and bank bytes. The savings are read from the banks the run used (``provenance.json``);
the run itself is unchanged.

Example::

    from fusion_aft.report import attribution, drop_suggestions
    sug = drop_suggestions(attribution("runs/rt-aft", plot=False), "runs/rt-aft")
    [(t["teacher"], t["ratio"]) for t in sug["drop"]], sug["saves"]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_RATIO", "drop_suggestions"]

#: a teacher is suggested for dropping when its μ share is below this fraction of its column share
DEFAULT_RATIO = 0.5


def _banks_of_run(run_dir: Path) -> dict[str, list[str]]:
    """Teacher ref -> bank folders recorded in the run's ``provenance.json``."""
    path = run_dir / "provenance.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except (OSError, json.JSONDecodeError):
        return {}
    out: dict[str, list[str]] = {}
    for entry in data.get("banks", []) or []:
        if entry.get("teacher") and entry.get("folder"):
            out.setdefault(str(entry["teacher"]), []).append(str(entry["folder"]))
    return out


def _bank_savings(folders: list[str]) -> dict[str, Any]:
    from fusion_aft.bank.manifest import CorruptBankError, read_manifest
    from fusion_aft.ranking.cost import bank_cost

    seconds: float | None = 0.0
    nbytes, sources = 0, set()
    for folder in folders:
        try:
            manifest = read_manifest(Path(folder))
        except (CorruptBankError, OSError):
            seconds = None
            continue
        cost = bank_cost(folder, manifest)
        nbytes += cost.bytes
        sources.add(cost.source)
        seconds = None if seconds is None or cost.seconds is None else seconds + cost.seconds
    return {"extract_seconds": seconds, "bank_bytes": nbytes, "cost_source": ", ".join(sorted(sources))}


def drop_suggestions(
    report: dict[str, Any], run_dir: str | Path, ratio: float = DEFAULT_RATIO
) -> dict[str, Any]:
    """Teachers of ``report`` (from :func:`attribution`) whose μ share < ``ratio`` × column share.

    Returns ``{"ratio", "drop": [{teacher, share, initial_share, ratio, extract_seconds,
    bank_bytes, cost_source}], "keep": [...], "saves": {extract_seconds, bank_bytes}}``. The
    teacher with the largest share is never suggested, so at least one teacher is always kept.
    """
    run_dir = Path(run_dir)
    banks = _banks_of_run(run_dir)
    teachers = report.get("teachers", [])
    top = max(teachers, key=lambda t: t["share"])["teacher"] if teachers else None
    drop, keep = [], []
    for t in teachers:
        r = t["share"] / t["initial_share"] if t["initial_share"] else 1.0
        row = {"teacher": t["teacher"], "share": t["share"], "initial_share": t["initial_share"], "ratio": r}
        if r < ratio and t["teacher"] != top:
            row.update(_bank_savings(banks.get(t["teacher"], [])))
            drop.append(row)
        else:
            keep.append(row)
    secs = [d["extract_seconds"] for d in drop]
    saves = {
        "extract_seconds": None if any(s is None for s in secs) else float(sum(secs)),
        "bank_bytes": int(sum(d["bank_bytes"] for d in drop)),
    }
    return {"ratio": ratio, "drop": drop, "keep": keep, "saves": saves}
