"""The benchmark report's section that sets the teacher ranking beside the ablation.

It reads ``ranking.json`` from the results folder (written by ``benchmarks/rank_vs_ablation.py``
from the recorded ablation and ``fusion-aft teachers rank``) and renders one row per task: the
recommended subset, its AFT accuracy against the best subset's, whether the gap is within one
standard error, Spearman's correlation of the ranking's subset scores with AFT's accuracies, and
the ranking's time. No section when the file is absent.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["RANKING_FILE", "ranking_section"]

log = logging.getLogger(__name__)

RANKING_FILE = "ranking.json"


def _label(subset: list[str]) -> str:
    return " + ".join(t.split("?")[0] for t in subset)


def _acc(mean: float | None, se: float | None) -> str:
    return "—" if mean is None else f"{100 * mean:.1f} ± {100 * (se or 0.0):.1f}"


def ranking_section(out_dir: str | Path) -> list[str]:
    """Markdown lines of the section (empty when ``out_dir`` holds no ranking)."""
    path = Path(out_dir) / RANKING_FILE
    if not path.is_file():
        return []
    try:
        rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("ranking section skipped: %s is unreadable (%s)", path, exc)
        return []
    md = [
        "## Teacher ranking before training",
        "",
        "`fusion-aft teachers rank` on each task's labelled training rows (kernel-target alignment of "
        "each subset's mean kernel, no test rows), beside the AFT ablation above: the subset it "
        "recommends, its AFT accuracy against the best subset's, and Spearman's correlation between "
        "the ranking's score of each subset and AFT's accuracy with it. Details: [ranking.md](ranking.md).",
        "",
        "| task | recommended | AFT % | best subset | AFT % | within 1 SE | Spearman | rank s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r["default_rule"]
        within = "—" if d.get("within_1se") is None else ("yes" if d["within_1se"] else "no")
        md.append(
            f"| {r['task']} | {_label(d['recommended'])} | {_acc(d.get('acc'), d.get('acc_se'))} | "
            f"{_label(d['best'])} | {_acc(d['best_acc'], d['best_se'])} | {within} | "
            f"{r['spearman']:+.2f} ({r['n_subsets']} subsets) | {r['rank_seconds_cached']:.1f} |"
        )
    return md + [""]
