"""β selection on a holdout of the labelled training rows (Qiu et al. 2024, §4).

Every β of the grid trains on the fit part (90% by default) and is scored on the holdout (10%);
the test split is never read. The best holdout accuracy wins (ties go to the smaller β, the one
closer to plain fine-tuning). Each finished candidate is recorded in ``sweep.json`` at once, so
a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from fusion_aft.data.records import Split
from fusion_aft.fileio import atomic_write_json
from fusion_aft.training.engine import FitSpec, evaluate, fit

log = logging.getLogger(__name__)


def candidate_folder(run_dir: Path, beta: float) -> Path:
    return run_dir / "sweep" / f"beta-{beta:g}"


def run_sweep(
    base: FitSpec,
    grid: Sequence[float],
    holdout: Split,
    run_dir: Path,
    resume: bool,
) -> dict[str, Any]:
    """Train one candidate per β on ``base.labelled`` and score it on ``holdout``.

    Returns the sweep record (also written to ``sweep.json``): grid, candidates, chosen β.
    """
    path = run_dir / "sweep.json"
    done: dict[float, dict[str, Any]] = {}
    if resume and path.is_file():
        import json

        for entry in json.loads(path.read_text(encoding="utf8")).get("candidates", []):
            done[float(entry["beta"])] = entry
    record: dict[str, Any] = {
        "metric": "holdout_accuracy",
        "grid": [float(b) for b in grid],
        "n_fit": len(base.labelled),
        "n_holdout": len(holdout),
        "holdout_ids_head": holdout.ids[:5],
        "candidates": [],
        "best_beta": None,
    }
    for beta in grid:
        beta = float(beta)
        if beta in done:
            record["candidates"].append(done[beta])
            continue
        folder = candidate_folder(run_dir, beta)
        spec = replace(base, beta=beta, folder=folder, resume=resume, label=f"β={beta:g}")
        out = fit(spec)
        acc = evaluate(out.student, holdout, base.cfg, base.device)
        train_records = [r for r in out.history if r.get("phase") == "train"]
        entry = {
            "beta": beta,
            "holdout_accuracy": acc,
            "steps": out.steps,
            "wall_time_s": round(out.wall_time_s, 3),
            "final_loss": train_records[-1]["loss"] if train_records else None,
            "final_reg": train_records[-1]["reg"] if train_records else None,
        }
        log.info("β=%g: holdout accuracy %.4f", beta, acc)
        record["candidates"].append(entry)
        atomic_write_json(path, record)
        shutil.rmtree(folder / "checkpoint", ignore_errors=True)  # weights are not needed any more
    best = max(record["candidates"], key=lambda e: (e["holdout_accuracy"], -e["beta"]))
    record["best_beta"] = best["beta"]
    record["best_holdout_accuracy"] = best["holdout_accuracy"]
    atomic_write_json(path, record)
    plot_sweep(record, run_dir / "sweep.png")
    return record


def plot_sweep(record: dict[str, Any], path: Path) -> Path:
    """Holdout accuracy against β (log axis; β = 0 drawn at the left edge), the choice marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = sorted(record["candidates"], key=lambda e: e["beta"])
    positive = [e["beta"] for e in cands if e["beta"] > 0]
    floor = min(positive) / 10 if positive else 1e-3
    xs = [e["beta"] if e["beta"] > 0 else floor for e in cands]
    ys = [e["holdout_accuracy"] for e in cands]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(xs, ys, marker="o")
    best = record.get("best_beta")
    if best is not None:
        bx = best if best > 0 else floor
        ax.axvline(bx, color="tab:red", linestyle="--", linewidth=1, label=f"chosen β = {best:g}")
        ax.legend(loc="best", fontsize=8)
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(xs, [f"{e['beta']:g}" for e in cands])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("β" + (" (β = 0 drawn at the left edge)" if any(e["beta"] == 0 for e in cands) else ""))
    ax.set_ylabel("holdout accuracy")
    ax.set_title(f"β sweep ({record['n_fit']} fit rows, {record['n_holdout']} holdout rows)", fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
