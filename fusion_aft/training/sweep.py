"""β selection by k-fold cross-validation on the labelled training rows (Qiu et al. 2024, §4).

The labelled rows are cut into ``k`` stratified folds (3 by default). Every β of the grid trains
once per fold, on the other folds, for a fraction of the given steps (half by default), and
is scored on the held-out fold by its mean cross-entropy (a score of every row's probability, not
a count of a handful of right answers) and its accuracy. The choice follows the one-standard-error
rule of :mod:`fusion_aft.training.selection`. The test split is never read.

The grid runs from the smallest β up and stops early once ``patience`` (2 by default) of the β
values past the lowest mean so far are above the rule's threshold: holdout cross-entropy against
β is U-shaped, so once the loss has risen out of the rule's reach twice on the way up, larger β
are not chosen. On twelve recorded sweeps of two public tasks this skipped 0–2 of 7 β (a sixth
of the cost) and never changed the choice. ``patience=0`` runs the whole grid.

Where the run has teachers, a linear probe of their features on the same folds is recorded
beside the candidates (``teacher_probe``), paired with the student alone, and a probe below the
student alone is logged as a warning (:mod:`fusion_aft.training.teacher_probe`); it costs seconds
and changes no choice.

β = 0 is trained as the student alone (:func:`fusion_aft.training.engine.student_alone`), so
the rule can choose "off". Every run also records its holdout cross-entropy at its best temperature
(:mod:`fusion_aft.training.calibration`); ``metric`` says which of the two the rule reads.

Cost: at most ``k × len(grid) × fraction`` default-length runs in steps, 10.5 for the 7 β > 0 of
the default grid (3 folds, half the steps) plus three runs of the student alone for β = 0, each on
``(k - 1) / k`` of the labelled rows. Each finished (β, fold) run is
recorded in ``sweep.json`` at once, so a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from fusion_aft.data.records import Split
from fusion_aft.fileio import atomic_write_json
from fusion_aft.training.engine import FitSpec, fit, holdout_scores
from fusion_aft.training.selection import (
    Rule,
    TieBreak,
    accuracy_veto,
    choose_beta,
    paired_difference,
    summarise,
)
from fusion_aft.training.teacher_probe import compare_with_student_alone, probe_folds, shortfall_warning

log = logging.getLogger(__name__)

METRICS = ("cross_entropy", "calibrated_cross_entropy")
Metric = Literal["cross_entropy", "calibrated_cross_entropy"]


def candidate_folder(run_dir: Path, beta: float, fold: int = 0) -> Path:
    return run_dir / "sweep" / f"fold-{fold}" / f"beta-{beta:g}"


def run_sweep(
    base: FitSpec,
    grid: Sequence[float],
    folds: Sequence[tuple[Split, Split]],
    run_dir: Path,
    resume: bool,
    candidate_steps: int,
    rule: Rule = "one_se",
    patience: int = 0,
    metric: Metric = "cross_entropy",
    zero_unless_better: bool = False,
    accuracy_guard: float | None = None,
    tie_break: TieBreak = "largest",
) -> dict[str, Any]:
    """Train one candidate per (β, fold) for ``candidate_steps`` steps and choose β.

    ``folds`` holds ``(fit, holdout)`` pairs; β values run in increasing order and stop early
    after ``patience`` ruled-out values past the running minimum (0: never); ``metric`` is the
    holdout score the rule reads; ``zero_unless_better`` keeps β = 0 where it is within the rule's
    threshold (:func:`fusion_aft.training.selection.choose_beta`); ``tie_break`` picks among the
    β within the one-SE threshold (the largest, or the highest holdout accuracy);
    ``accuracy_guard`` (standard errors) sets the chosen β back to 0 when its holdout accuracy is
    below the student alone's (:func:`fusion_aft.training.selection.accuracy_veto`). Returns the
    sweep record (also ``sweep.json``): the runs, per β the mean / std / stderr of the holdout
    cross-entropy (raw and calibrated) and accuracy, ``best_beta``, ``kept_off``,
    ``accuracy_vetoed`` and the β values ``skipped`` by the early stop.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown β sweep metric {metric!r}; use one of {', '.join(METRICS)}")
    key = f"holdout_{metric}"
    path = run_dir / "sweep.json"
    done: dict[tuple[float, int], dict[str, Any]] = {}
    if resume and path.is_file():
        old = json.loads(path.read_text(encoding="utf8"))
        if old.get("candidate_steps") == candidate_steps and old.get("folds") == len(folds):
            for entry in old.get("runs", []):
                if key not in entry:  # recorded before this score existed: run it again
                    continue
                done[(float(entry["beta"]), int(entry["fold"]))] = entry
    cand_cfg = base.cfg.model_copy(update={"steps": candidate_steps, "epochs": None})
    record: dict[str, Any] = {
        "metric": key,
        "rule": rule,
        "folds": len(folds),
        "grid": [float(b) for b in grid],
        "candidate_steps": candidate_steps,
        "n_rows": len(folds[0][0]) + len(folds[0][1]),
        "fold_sizes": [len(hold) for _, hold in folds],
        "n_fit": len(folds[0][0]),
        "n_holdout": len(folds[0][1]),
        "runs": [],
        "candidates": [],
        "best_beta": None,
        "patience": int(patience),
        "zero_unless_better": bool(zero_unless_better),
        "accuracy_guard": accuracy_guard,
        "tie_break": tie_break,
        "skipped": [],
    }
    order = sorted(float(b) for b in grid)
    for i, beta in enumerate(order):
        if patience and ruled_out_past_minimum(record["runs"], rule, key) >= patience:
            record["skipped"] = order[i:]
            log.info("β sweep stopped early: %d β values past the lowest holdout loss were ruled out; "
                     "skipping %s", patience, ", ".join(f"{b:g}" for b in order[i:]))
            break
        for f, (fit_part, hold) in enumerate(folds):
            if (beta, f) in done:
                record["runs"].append(done[(beta, f)])
                continue
            folder = candidate_folder(run_dir, beta, f)
            spec = replace(
                base,
                cfg=cand_cfg,
                labelled=fit_part,
                beta=beta,
                folder=folder,
                resume=resume,
                label=f"β={beta:g} fold {f + 1}/{len(folds)}",
            )
            out = fit(spec)
            scores = holdout_scores(out.student, hold, cand_cfg, base.device)
            train_records = [r for r in out.history if r.get("phase") == "train"]
            entry = {
                "beta": beta,
                "fold": f,
                "holdout_cross_entropy": scores["cross_entropy"],
                "holdout_calibrated_cross_entropy": scores["calibrated_cross_entropy"],
                # inf (no better than chance) is not JSON: None
                "holdout_temperature": None if math.isinf(scores["temperature"]) else scores["temperature"],
                "holdout_accuracy": scores["accuracy"],
                "steps": out.steps,
                "wall_time_s": round(out.wall_time_s, 3),
                "final_loss": train_records[-1]["loss"] if train_records else None,
                "final_reg": train_records[-1]["reg"] if train_records else None,
            }
            log.info(
                "β=%g fold %d: holdout cross-entropy %.4f (%.4f at temperature %.3g), accuracy %.4f",
                beta,
                f,
                scores["cross_entropy"],
                scores["calibrated_cross_entropy"],
                scores["temperature"],
                scores["accuracy"],
            )
            record["runs"].append(entry)
            atomic_write_json(path, record)
            shutil.rmtree(folder / "checkpoint", ignore_errors=True)  # weights are not needed any more
    record.update(summarise_runs(record["runs"], rule, key, zero_unless_better, accuracy_guard, tie_break))
    if base.bank is not None:
        record["teacher_probe"] = teacher_probe(base, folds, record["runs"])
    atomic_write_json(path, record)
    plot_sweep(record, run_dir / "sweep.png")
    if record["lowest_at_largest_beta"]:
        top = max(record["grid"])
        log.warning(
            "β=%g, the largest value of the grid, has the lowest holdout cross-entropy: a larger β may "
            "do better; a grid that reaches higher (e.g. %g, %g, %g) would tell",
            top,
            top,
            3 * top,
            10 * top,
        )
    return record


def teacher_probe(
    base: FitSpec, folds: Sequence[tuple[Split, Split]], runs: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The teachers' linear probe on the sweep's folds, paired with the student alone (β = 0)
    where the grid has it (:mod:`fusion_aft.training.teacher_probe`); a probe below the student
    alone is logged as a warning."""
    off = _by_beta_and_fold(runs, "holdout_accuracy").get(0.0)
    probe = compare_with_student_alone(probe_folds(base.bank, folds), off)
    warning = shortfall_warning(probe)
    if warning:
        log.warning("%s", warning)
    return probe


def _by_beta_and_fold(runs: Sequence[dict[str, Any]], key: str) -> dict[float, dict[int, float]]:
    """``{β: {fold: the run's value of key}}``."""
    out: dict[float, dict[int, float]] = {}
    for r in runs:
        out.setdefault(float(r["beta"]), {})[int(r["fold"])] = float(r[key])
    return out


def _by_beta(runs: Sequence[dict[str, Any]], key: str) -> dict[float, list[float]]:
    """``{β: [the runs' values of key, one per fold]}``."""
    return {beta: list(folds.values()) for beta, folds in _by_beta_and_fold(runs, key).items()}


def _stats(runs: Sequence[dict[str, Any]], key: str) -> dict[float, dict[str, float]]:
    """``{β: summarise(the runs' values of key)}``."""
    return {beta: summarise(values) for beta, values in _by_beta(runs, key).items()}


def ruled_out_past_minimum(
    runs: Sequence[dict[str, Any]], rule: Rule, key: str = "holdout_cross_entropy"
) -> int:
    """How many finished β values larger than the lowest-mean one have a mean holdout loss
    (``key`` of the runs) above the rule's threshold (so the rule cannot choose them)."""
    losses = _by_beta(runs, key)
    if not losses:
        return 0
    choice = choose_beta(losses, rule)
    stats = choice["stats"]
    return sum(1 for b, st in stats.items() if b > choice["min_beta"] and st["mean"] > choice["threshold"])


def summarise_runs(
    runs: Sequence[dict[str, Any]],
    rule: Rule,
    key: str = "holdout_cross_entropy",
    zero_unless_better: bool = False,
    accuracy_guard: float | None = None,
    tie_break: TieBreak = "largest",
) -> dict[str, Any]:
    """Per-β statistics of the fold runs and the β the rule chooses on ``key`` (among the β within
    its threshold: the largest, or with ``tie_break="accuracy"`` the highest mean holdout
    accuracy), set back to 0 when ``accuracy_guard`` vetoes it
    (:func:`fusion_aft.training.selection.accuracy_veto`)."""
    if tie_break not in ("largest", "accuracy"):
        raise ValueError(f"unknown β tie-break {tie_break!r}; use 'accuracy' or 'largest'")
    acc_stats = _stats(runs, "holdout_accuracy")
    prefer = {b: s["mean"] for b, s in acc_stats.items()} if tie_break == "accuracy" else None
    choice = choose_beta(_by_beta(runs, key), rule, zero_unless_better, prefer)
    by_fold = _by_beta_and_fold(runs, "holdout_accuracy")
    veto = accuracy_veto(by_fold, choice["beta"], accuracy_guard)
    chosen = 0.0 if veto["vetoed"] else choice["beta"]
    ce_stats = _stats(runs, "holdout_cross_entropy")
    # runs recorded before the calibrated score existed (a resumed sweep) have none
    has_calibrated = all("holdout_calibrated_cross_entropy" in r for r in runs)
    cal_stats = _stats(runs, "holdout_calibrated_cross_entropy") if has_calibrated else {}
    candidates = []
    for beta, s in choice["stats"].items():
        a, c = acc_stats[beta], ce_stats[beta]
        entry = {
            "beta": beta,
            "n_folds": s["n"],
            "mean_score": s["mean"],
            "stderr_score": s["stderr"],
            "mean_cross_entropy": c["mean"],
            "std_cross_entropy": c["std"],
            "stderr_cross_entropy": c["stderr"],
            "holdout_accuracy": a["mean"],
            "std_accuracy": a["std"],
            "stderr_accuracy": a["stderr"],
        }
        if has_calibrated:
            k = cal_stats[beta]
            entry.update(
                mean_calibrated_cross_entropy=k["mean"],
                std_calibrated_cross_entropy=k["std"],
                stderr_calibrated_cross_entropy=k["stderr"],
            )
        if beta != 0 and 0.0 in by_fold:
            # paired per fold: the same holdout rows with and without the regulariser
            d = paired_difference(by_fold[beta], by_fold[0.0])
            entry.update(accuracy_vs_off=d["mean"], stderr_accuracy_vs_off=d["stderr"])
        candidates.append(entry)
    best = next(c for c in candidates if c["beta"] == chosen)
    grid = sorted(choice["stats"])
    return {
        "candidates": candidates,
        "best_beta": chosen,
        "kept_off": choice["kept_off"],
        # the β the holdout loss chose, set back to 0 for losing holdout accuracy (None: not vetoed)
        "accuracy_vetoed": choice["beta"] if veto["vetoed"] else None,
        "accuracy_check": {k: v for k, v in veto.items() if k != "vetoed"},
        "min_mean_beta": choice["min_beta"],
        # the loss still falls at the grid's edge: the best β may lie beyond it
        "lowest_at_largest_beta": len(grid) > 1 and choice["min_beta"] == grid[-1],
        "threshold": choice["threshold"],
        "best_score": best["mean_score"],
        "best_cross_entropy": best["mean_cross_entropy"],
        "best_holdout_accuracy": best["holdout_accuracy"],
        "sweep_steps": int(sum(int(r["steps"]) for r in runs)),
        "sweep_wall_time_s": round(sum(float(r["wall_time_s"]) for r in runs), 3),
    }


def _metric_label(record: dict[str, Any]) -> str:
    calibrated = record.get("metric") == "holdout_calibrated_cross_entropy"
    return "holdout cross-entropy" + (" at the best temperature" if calibrated else "")


def plot_sweep(record: dict[str, Any], path: Path) -> Path:
    """Mean holdout cross-entropy ± one standard error against β (log axis; β = 0 drawn at the
    left edge), with the one-SE threshold and the choice marked; accuracy on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    cands = sorted(record["candidates"], key=lambda e: e["beta"])
    positive = [e["beta"] for e in cands if e["beta"] > 0]
    floor = min(positive) / 10 if positive else 1e-3
    xs = [e["beta"] if e["beta"] > 0 else floor for e in cands]
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=120)
    ax.errorbar(
        xs,
        [e.get("mean_score", e["mean_cross_entropy"]) for e in cands],
        yerr=[e.get("stderr_score", e["stderr_cross_entropy"]) for e in cands],
        marker="o",
        capsize=3,
        label=f"{_metric_label(record)} (mean ± SE)",
    )
    if record.get("threshold") is not None and record.get("rule") == "one_se":
        ax.axhline(record["threshold"], color="grey", linestyle=":", linewidth=1, label="min + 1 SE")
    best = record.get("best_beta")
    if best is not None:
        bx = best if best > 0 else floor
        ax.axvline(bx, color="tab:red", linestyle="--", linewidth=1, label=f"chosen β = {best:g}")
    vetoed = record.get("accuracy_vetoed")
    if vetoed is not None:
        ax.axvline(vetoed, color="tab:orange", linestyle=":", linewidth=1.2,
                   label=f"β = {vetoed:g}: lower holdout accuracy than β = 0")
    ax2 = ax.twinx()
    ax2.errorbar(
        xs,
        [e["holdout_accuracy"] for e in cands],
        yerr=[e["stderr_accuracy"] for e in cands],
        color="tab:green",
        marker="s",
        markersize=3,
        linewidth=0.8,
        capsize=2,
        alpha=0.6,
    )
    probe = record.get("teacher_probe")
    if probe is not None:
        ax2.axhline(probe["accuracy"], color="tab:green", linestyle="--", linewidth=0.8, alpha=0.6)
        ax2.annotate("teachers' linear probe", (0.01, probe["accuracy"]), xycoords=("axes fraction", "data"),
                     fontsize=6, color="tab:green", va="bottom")
    ax2.set_ylabel("holdout accuracy (mean ± SE)", color="tab:green", fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{e['beta']:g}" for e in cands])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("β" + (" (β = 0 drawn at the left edge)" if any(e["beta"] == 0 for e in cands) else ""))
    ax.set_ylabel(_metric_label(record))
    ax.legend(loc="best", fontsize=7)
    ax.set_title(
        f"β sweep: {record['folds']} folds of {record['n_rows']} rows, "
        f"{record['candidate_steps']} steps per candidate",
        fontsize=9,
    )
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
