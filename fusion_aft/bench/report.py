"""The benchmark report: a markdown file and PNG figures, made from ``results.json`` alone.

Figures follow the paper's presentation (Qiu et al. 2024): the STL-normalised error averaged over
tasks per method (Fig. 2/3), the teacher ablation and μ shares (§5.3), and student accuracy
against the teachers' linear-probe accuracy ("stronger teacher, better student", Fig. 4).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from fusion_aft.bench.aggregate import Summary, normalised_error, summarise
from fusion_aft.bench.figures import (
    ablation_rows,
    fig_ablation,
    fig_accuracy,
    fig_cost,
    fig_mu,
    fig_normalised,
    fig_strength,
    mu_shares,
)
from fusion_aft.bench.labels import (
    FIGURES,
    METHOD_LABELS,
    full_sets,
    method_label,
    order_methods,
    pct,
    short_name,
    subset_label,
)
from fusion_aft.bench.ranking_section import ranking_section
from fusion_aft.bench.suite import PROBE

__all__ = ["METHOD_LABELS", "FIGURES", "method_label", "summary_table_rows", "write_report"]

log = logging.getLogger(__name__)

def summary_table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table: method × task accuracy, then the normalised error."""
    summaries = summarise(results["cells"])
    full = full_sets(summaries)
    tasks = [t["name"] for t in results.get("tasks", [])] or sorted({s.task for s in summaries})
    norm = normalised_error(summaries)
    header = ["method", *tasks, "error / STL (mean over tasks)"]
    rows = []
    for method in order_methods([s.method for s in summaries]):
        row = [method_label(method)]
        for task in tasks:
            match = [
                s
                for s in summaries
                if s.task == task
                and s.method == method
                and (method == "none" or s.teachers == full.get(task))
            ]
            row.append(pct(match[0].mean, match[0].stderr) if match else "—")
        value = norm.get(method)
        row.append("—" if value is None else f"{value:.3f}")
        rows.append(row)
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# -- markdown -----------------------------------------------------------------------------------
def write_report(results: dict[str, Any], out_dir: str | Path) -> list[str]:
    """Write ``report.md`` and the figures into ``out_dir``; returns the figure files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = results["cells"]
    summaries = summarise(records)
    tasks = [t["name"] for t in results.get("tasks", [])] or sorted({s.task for s in summaries})
    ablation_method = results.get("ablation_method") or "aft"
    shares = mu_shares(records, ablation_method)

    figures = []
    makers = {
        "normalised_error.png": lambda p: fig_normalised(summaries, p),
        "accuracy.png": lambda p: fig_accuracy(summaries, tasks, p),
        "ablation.png": lambda p: fig_ablation(summaries, ablation_method, p),
        "mu_share.png": lambda p: fig_mu(shares, p),
        "teacher_strength.png": lambda p: fig_strength(summaries, p),
        "cost.png": lambda p: fig_cost(results, p),
    }
    for name, make in makers.items():
        try:
            if make(out / name):
                figures.append(name)
        except Exception as exc:  # a figure must never lose the computed results
            log.warning("figure %s failed: %s", name, exc)

    md: list[str] = [f"# Benchmark `{results.get('suite', {}).get('name', '?')}`", ""]
    desc = results.get("suite", {}).get("description")
    if desc:
        md += [desc.strip(), ""]
    env = results.get("environment", {})
    md += [
        f"- date: {results.get('date', '?')}",
        f"- machine: {env.get('machine', '?')}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in env.get('versions', {}).items())}",
        f"- wall time of this run: {results.get('wall_seconds', math.nan):.0f} s "
        f"({results.get('cells_run', '?')} cells run, {results.get('cells_reused', '?')} reused"
        + (f"; {results['jobs']} cells at a time, one process each" if results.get("jobs", 1) > 1 else "")
        + ")",
        "",
        "## Summary",
        "",
        "Test accuracy (%) mean ± standard error over seeds, full teacher set; last column: test error "
        "divided by the student-alone (STL) error, averaged over tasks (below 1: the teachers helped).",
        "",
    ]
    header, rows = summary_table_rows(results)
    md += [_md_table(header, rows), ""]
    if "normalised_error.png" in figures:
        md += ["![STL-normalised error](normalised_error.png)", ""]
    if "accuracy.png" in figures:
        md += ["![accuracy per task](accuracy.png)", ""]

    md += ["## Per task", ""]
    for task in results.get("tasks", []):
        name = task["name"]
        md += [f"### {name}", "", _task_line(task), ""]
        rows = []
        for s in sorted(
            (s for s in summaries if s.task == name),
            key=lambda s: (
                order_methods([x.method for x in summaries]).index(s.method),
                len(s.teachers),
                s.teachers,
            ),
        ):
            beta = s.beta if s.method not in ("none", PROBE) else "—"
            rows.append(
                [method_label(s.method), subset_label(s.teachers), beta, pct(s.mean, s.stderr), s.n]
            )
        md += [_md_table(["method", "teachers", "β", "accuracy %", "seeds"], rows), ""]

    md += _ablation_section(summaries, ablation_method, figures)
    md += ranking_section(out)
    md += _mu_section(shares, figures, results.get("teachers") or [])
    if "teacher_strength.png" in figures:
        md += [
            "## Stronger teachers, better students",
            "",
            "Each point is one teacher subset: x is the linear probe on that subset's bank (the "
            "teachers' strength on the task), y the student trained with it.",
            "",
            "![teacher strength](teacher_strength.png)",
            "",
        ]
    md += cost_section(results, figures)
    md += _tuning_section(results)
    md += [
        "## Reproduce",
        "",
        f"`fusion-aft bench {results.get('suite', {}).get('name', 'SUITE')}"
        f"{''.join(f' --task {t}' for t in results.get('picked_tasks') or [])} --out DIR` (finished "
        "cells are reused; delete DIR/cells to start over).",
        "",
    ]
    (out / "report.md").write_text("\n".join(md), encoding="utf8")
    return figures


def _task_line(task: dict[str, Any]) -> str:
    parts = [f"dataset `{task['dataset']}`"]
    if task.get("labels"):
        parts.append(f"{task['labels']} labels")
    if task.get("n_unlabelled"):
        parts.append(f"{task['n_unlabelled']} unlabelled rows for the regulariser")
    if task.get("n_test"):
        parts.append(f"{task['n_test']} test rows")
    parts.append(f"student `{task['student']}`")
    parts.append("teachers " + ", ".join(f"`{t}`" for t in task["teachers"]))
    length = f"{task['steps']} steps" if task.get("steps") else f"{task.get('epochs')} epochs"
    parts.append(f"{length}, batch {task['batch_size']}, lr {task['lr']:g}")
    return "; ".join(parts) + "."


def _ablation_section(summaries: list[Summary], method: str, figures: list[str]) -> list[str]:
    table = ablation_rows(summaries, method)
    if not table:
        return []
    md = [
        f"## Teacher ablation ({method_label(method)})",
        "",
        f"{method_label(method)} trained with each teacher subset (same β as the full set), next to "
        "the linear probe on the same features.",
        "",
    ]
    rows = []
    for task, entries in sorted(table.items()):
        full = max(entries, key=lambda r: len(r[0]))
        singles = [r for r in entries if len(r[0]) == 1]
        best_single = max(singles, key=lambda r: r[1].mean) if singles else None
        for teachers, s, probe in entries:
            note = ""
            if teachers == full[0] and best_single is not None:
                gain = 100 * (s.mean - best_single[1].mean)
                note = f"{gain:+.1f} pt vs best single ({subset_label(best_single[0])})"
            rows.append(
                [
                    task,
                    subset_label(teachers),
                    pct(s.mean, s.stderr),
                    pct(probe.mean) if probe else "—",
                    note,
                ]
            )
    md += [
        _md_table(["task", "teachers", f"{method_label(method)} accuracy %", "probe accuracy %", ""], rows),
        "",
    ]
    if "ablation.png" in figures:
        md += ["![teacher ablation](ablation.png)", ""]
    return md


def _mu_section(
    shares: dict[str, dict[str, tuple[float, float]]], figures: list[str], teachers: list[dict[str, Any]]
) -> list[str]:
    if not shares:
        return []
    widths: dict[str, dict[str, int]] = defaultdict(dict)
    for t in teachers:
        if t.get("width"):
            widths[t["task"]][short_name(t["teacher"])] = int(t["width"])
    md = [
        "## Which teacher AFT used (μ)",
        "",
        "Share of the learned per-feature weights μ = sigmoid(s) summed per teacher, over the "
        "full-set AFT runs (mean ± standard error over seeds). Wider teachers have more features, "
        "so compare each share with the teacher's share of the columns (μ = 0.5 everywhere at the "
        "start gives exactly that share).",
        "",
    ]
    rows = []
    for task, per in sorted(shares.items()):
        total = sum(widths[task].values())
        for teacher, (mean, se) in per.items():
            width = widths[task].get(short_name(teacher))
            col = f"{100 * width / total:.1f}" if width and total else "—"
            rows.append([task, short_name(teacher), pct(mean, se), col])
    md += [_md_table(["task", "teacher", "μ share %", "column share %"], rows), ""]
    if "mu_share.png" in figures:
        md += ["![mu share](mu_share.png)", ""]
    return md


def cost_section(results: dict[str, Any], figures: list[str]) -> list[str]:
    """The report's "Cost" section: each teacher's extraction time (from the manifests) and each student's."""
    teachers = results.get("teachers") or []
    students = results.get("students") or []
    if not teachers and not students:
        return []
    md = [
        "## Cost",
        "",
        "Teacher features are extracted once per task and cached; training never runs a teacher. "
        "Extraction seconds are the time spent extracting each bank (train and test splits), summed "
        "over the runs that wrote its chunks, as its manifest records them.",
        "",
    ]
    rows = []
    for t in teachers:
        secs = t.get("extract_seconds")
        rows.append(
            [
                t["task"],
                t["teacher"],
                t.get("width", "—"),
                f"{t['params'] / 1e6:.1f} M" if t.get("params") else "—",
                t.get("rows", "—"),
                "—" if secs is None else f"{secs:.1f}",
                "—" if t.get("seconds_per_1k_rows") is None else f"{t['seconds_per_1k_rows']:.2f}",
            ]
        )
    if rows:
        md += [
            _md_table(["task", "teacher", "width", "params", "rows", "extraction s", "s / 1k rows"], rows),
            "",
        ]
    rows = [
        [
            s["task"],
            s.get("student", "—"),
            f"{(s.get('params') or 0) / 1e6:.3f} M",
            "—" if s.get("latency_ms") is None else f"{s['latency_ms']:.2f}",
            "—" if s.get("train_seconds") is None else f"{s['train_seconds']:.1f}",
        ]
        for s in students
    ]
    if rows:
        md += [
            _md_table(["task", "student", "params", "ms / example (batch 1)", "train s / run (mean)"], rows),
            "",
        ]
    if "cost.png" in figures:
        md += ["![cost](cost.png)", ""]
    return md


def _tuning_section(results: dict[str, Any]) -> list[str]:
    tuning = results.get("tuning") or {}
    if not tuning:
        return []
    by_accuracy = any(
        info.get("tie_break") == "accuracy" for methods in tuning.values() for info in methods.values()
    )
    rule = (
        "Among the β whose mean is within one standard error of the lowest, the chosen one has the "
        "highest mean holdout accuracy (ties: the larger β), as `fusion-aft train --beta auto` does; "
        "in brackets, the largest β within one standard error where it differs."
        if by_accuracy
        else "The chosen β is the largest whose mean is within one standard error of the lowest."
    )
    md = [
        "## β tuning (folds of the labelled training rows; the test split is never used)",
        "",
        "Per β: mean holdout cross-entropy ± its standard error over the folds (mean holdout accuracy "
        f"%). {rule}",
        "",
    ]
    rows = []
    for task, methods in sorted(tuning.items()):
        for method, info in methods.items():
            ce = info.get("cross_entropy") or {}
            parts = []
            for b, a in info["scores"]:
                s = ce.get(f"{b:g}")
                spread = f"{s['mean']:.3f} ± {s['stderr']:.3f} " if s else ""
                parts.append(f"{b:g}: {spread}({100 * a:.1f})")
            edge = "*" if info.get("lowest_at_largest_beta") else ""
            largest = info.get("largest_within")
            other = f" ({largest:g})" if largest is not None and largest != info["chosen"] else ""
            rows.append([task, method_label(method), ", ".join(parts), f"{info['chosen']:g}{edge}{other}"])
    md += [_md_table(["task", "method", "β: holdout CE ± SE (accuracy %)", "chosen β"], rows), ""]
    if any(info.get("lowest_at_largest_beta") for methods in tuning.values() for info in methods.values()):
        md += ["\\* the lowest cross-entropy is at the grid's largest β: a larger β may do better.", ""]
    return md
