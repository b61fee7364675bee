"""The benchmark report's PNG figures, each drawn from ``results.json`` data alone."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from fusion_aft.bench.aggregate import Summary, normalised_error, normalised_error_by_task
from fusion_aft.bench.labels import (
    full_sets,
    method_label,
    order_methods,
    short_name,
    subset_label,
)
from fusion_aft.bench.suite import PROBE

log = logging.getLogger(__name__)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fig_normalised(summaries: list[Summary], path: Path) -> bool:
    per_task = normalised_error_by_task(summaries)
    avg = normalised_error(summaries)
    methods = [m for m in order_methods(list(avg)) if m != "none"]
    if not methods:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.1 * len(methods) + 2, 3.6))
    xs = range(len(methods))
    ax.bar(xs, [avg[m] for m in methods], color=["C3" if m == "aft" else "C0" for m in methods], alpha=0.8)
    for i, m in enumerate(methods):
        vals = [row[m] for row in per_task.values() if m in row]
        ax.scatter([i] * len(vals), vals, color="k", s=12, zorder=3)
    ax.axhline(1.0, color="grey", ls="--", lw=1, label="STL")
    ax.set_xticks(list(xs), [method_label(m) for m in methods], rotation=20)
    ax.set_ylabel("test error / STL error")
    ax.set_title(f"Error normalised by STL, mean over {len(per_task)} tasks (dots: tasks)")
    lo = min([avg[m] for m in methods] + [1.0]) - 0.1
    ax.set_ylim(max(0.0, lo), None)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def fig_accuracy(summaries: list[Summary], tasks: list[str], path: Path) -> bool:
    full = full_sets(summaries)
    if not tasks:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rows = [
            s for s in summaries if s.task == task and (s.method == "none" or s.teachers == full.get(task))
        ]
        order = order_methods([x.method for x in rows])
        rows.sort(key=lambda s: order.index(s.method))
        xs = list(range(len(rows)))
        ax.bar(
            xs,
            [s.mean for s in rows],
            yerr=[0 if math.isnan(s.stderr) else s.stderr for s in rows],
            color=["C3" if s.method == "aft" else "C2" if s.method == PROBE else "C0" for s in rows],
            alpha=0.8,
            capsize=3,
        )
        ax.set_xticks(xs, [method_label(s.method) for s in rows], rotation=35, ha="right")
        lo = min(s.mean for s in rows) if rows else 0
        ax.set_ylim(max(0.0, lo - 0.05), min(1.0, max(s.mean for s in rows) + 0.03) if rows else 1)
        ax.set_title(task)
        ax.set_ylabel("test accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def ablation_rows(
    summaries: list[Summary], method: str
) -> dict[str, list[tuple[tuple[str, ...], Summary, Summary | None]]]:
    out: dict[str, list] = defaultdict(list)
    probes = {(s.task, s.teachers): s for s in summaries if s.method == PROBE}
    for s in summaries:
        if s.method == method and s.teachers:
            out[s.task].append((s.teachers, s, probes.get((s.task, s.teachers))))
    for task in out:
        out[task].sort(key=lambda r: (len(r[0]), r[0]))
    return {t: rows for t, rows in out.items() if len(rows) > 1}


def fig_ablation(summaries: list[Summary], method: str, path: Path) -> bool:
    table = ablation_rows(summaries, method)
    if not table:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(1, len(table), figsize=(4.5 * len(table), 3.8), squeeze=False)
    for ax, (task, rows) in zip(axes[0], sorted(table.items()), strict=True):
        xs = list(range(len(rows)))
        ax.bar(
            [x - 0.2 for x in xs],
            [r[1].mean for r in rows],
            width=0.4,
            yerr=[0 if math.isnan(r[1].stderr) else r[1].stderr for r in rows],
            capsize=3,
            label=f"student ({method_label(method)})",
            color="C3",
            alpha=0.8,
        )
        ax.bar(
            [x + 0.2 for x in xs],
            [r[2].mean if r[2] else math.nan for r in rows],
            width=0.4,
            label="linear probe",
            color="C2",
            alpha=0.8,
        )
        ax.set_xticks(xs, [subset_label(r[0]).replace(" + ", "\n+ ") for r in rows], fontsize=7)
        vals = [r[1].mean for r in rows] + [r[2].mean for r in rows if r[2]]
        ax.set_ylim(max(0.0, min(vals) - 0.05), min(1.0, max(vals) + 0.03))
        ax.set_title(task)
        ax.set_ylabel("test accuracy")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def mu_shares(
    records: list[dict[str, Any]], method: str = "aft"
) -> dict[str, dict[str, tuple[float, float]]]:
    """task -> teacher -> (mean, stderr) share of μ over the full-set runs of ``method``."""
    from fusion_aft.bench.aggregate import mean_stderr

    by_task: dict[str, list[dict[str, float]]] = defaultdict(list)
    full: dict[str, int] = defaultdict(int)
    for r in records:
        if r.get("kind") == "run" and r["method"] == method:
            full[r["task"]] = max(full[r["task"]], len(r["teachers"]))
    for r in records:
        if (
            r.get("kind") == "run"
            and r["method"] == method
            and r.get("mu_share")
            and len(r["teachers"]) == full[r["task"]]
        ):
            by_task[r["task"]].append(r["mu_share"])
    out = {}
    for task, shares in by_task.items():
        teachers = list(shares[0])
        out[task] = {t: mean_stderr(s.get(t, math.nan) for s in shares) for t in teachers}
    return out


def fig_mu(shares: dict[str, dict[str, tuple[float, float]]], path: Path) -> bool:
    if not shares:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.2 * len(shares) + 2.5, 3.6))
    tasks = sorted(shares)
    seen: dict[str, int] = {}
    for i, task in enumerate(tasks):
        bottom = 0.0
        for teacher, (mean, _se) in shares[task].items():
            color = f"C{seen.setdefault(short_name(teacher), len(seen))}"
            ax.bar(i, mean, bottom=bottom, color=color, label=short_name(teacher), alpha=0.85)
            ax.text(i, bottom + mean / 2, f"{100 * mean:.0f}%", ha="center", va="center", fontsize=8)
            bottom += mean
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("share of Σμ")
    ax.set_title("AFT: learned weight mass per teacher")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def strength_points(summaries: list[Summary]) -> list[tuple[str, str, tuple[str, ...], float, float]]:
    probes = {(s.task, s.teachers): s.mean for s in summaries if s.method == PROBE}
    pts = []
    for s in summaries:
        if s.method in ("none", PROBE) or not s.teachers:
            continue
        if (s.task, s.teachers) in probes:
            pts.append((s.task, s.method, s.teachers, probes[(s.task, s.teachers)], s.mean))
    return pts


def fig_strength(summaries: list[Summary], path: Path) -> bool:
    pts = strength_points(summaries)
    if not pts:
        return False
    plt = pyplot()
    tasks = sorted({p[0] for p in pts})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        stl = [s.mean for s in summaries if s.task == task and s.method == "none"]
        for j, method in enumerate(order_methods([p[1] for p in pts if p[0] == task])):
            mp = sorted((p[3], p[4], p[2]) for p in pts if p[0] == task and p[1] == method)
            style = "-o" if len(mp) > 1 else "o"
            ax.plot(
                [m[0] for m in mp],
                [m[1] for m in mp],
                style,
                color="C3" if method == "aft" else f"C{j if j < 3 else j + 1}",
                label=method_label(method),
                ms=5,
            )
            if method == "aft" and len(mp) > 1:
                for x, y, teachers in mp:
                    ax.annotate(
                        subset_label(teachers),
                        (x, y),
                        fontsize=6,
                        xytext=(3, -8),
                        textcoords="offset points",
                    )
        if stl:
            ax.axhline(stl[0], color="grey", ls="--", lw=1, label="STL")
        ax.set_xlabel("teachers' linear-probe accuracy")
        ax.set_ylabel("student test accuracy")
        ax.set_title(task)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def fig_cost(results: dict[str, Any], path: Path) -> bool:
    teachers = results.get("teachers") or []
    students = results.get("students") or []
    if not teachers and not students:
        return False
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, t in enumerate(teachers):
        if t.get("seconds_per_1k_rows") is None:
            continue
        x = (t.get("params") or 0) / 1e6
        a1.scatter(x, t["seconds_per_1k_rows"], color=f"C{i % 10}")
        a1.annotate(f"{short_name(t['teacher'])}\n({t['task']})", (x, t["seconds_per_1k_rows"]), fontsize=6)
    a1.set_xlabel("teacher parameters (M)")
    a1.set_ylabel("extraction seconds per 1000 rows")
    a1.set_title("Teacher cost (once, cached)")
    for i, s in enumerate(students):
        x = (s.get("params") or 0) / 1e6
        a2.scatter(x, s.get("latency_ms") or math.nan, color=f"C{i % 10}", marker="s")
        a2.annotate(f"{s.get('student')} ({s['task']})", (x, s.get("latency_ms") or 0), fontsize=7)
    a2.set_xlabel("student parameters (M)")
    a2.set_ylabel("ms per example (batch 1)")
    a2.set_title("Student cost at inference (no teacher needed)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
