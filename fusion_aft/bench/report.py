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

from fusion_aft.bench.aggregate import Summary, normalised_error, normalised_error_by_task, summarise
from fusion_aft.bench.suite import PROBE

__all__ = ["METHOD_LABELS", "FIGURES", "method_label", "summary_table_rows", "write_report"]

log = logging.getLogger(__name__)

METHOD_LABELS = {
    "none": "STL",
    "kd": "KD",
    "rkd": "RKD",
    "ft": "FT",
    "btune": "B-Tuning",
    "aft": "AFT",
    "aft_rbf": "AFT (RBF)",
    "aft_dense": "AFT (dense)",
    "aft_no_kernel": "AFT (no kernel)",
    "kkd": "Kernel KD",
    PROBE: "Linear probe",
}
METHOD_ORDER = [
    "none",
    "kd",
    "rkd",
    "ft",
    "btune",
    "kkd",
    "aft_no_kernel",
    "aft_dense",
    "aft_rbf",
    "aft",
    PROBE,
]

#: file name -> what it shows
FIGURES = {
    "normalised_error.png": "test error / STL error, averaged over tasks, per method",
    "accuracy.png": "test accuracy per task and method (mean ± standard error over seeds)",
    "ablation.png": "AFT with each teacher subset vs the linear probe on the same subset",
    "mu_share.png": "share of AFT's learned weights μ per teacher",
    "teacher_strength.png": "student accuracy against the teachers' linear-probe accuracy",
    "cost.png": "teacher extraction time and student size and latency",
}


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def _order(methods: list[str]) -> list[str]:
    return sorted(set(methods), key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else 99, m))


def _pct(mean: float, se: float | None = None) -> str:
    if mean is None or math.isnan(mean):
        return "—"
    if se is None or math.isnan(se):
        return f"{100 * mean:.1f}"
    return f"{100 * mean:.1f} ± {100 * se:.1f}"


def _short(teacher: str) -> str:
    return teacher.split("?")[0]


def _subset_label(teachers: tuple[str, ...] | list[str]) -> str:
    return " + ".join(_short(t) for t in teachers) or "no teacher"


def _full_sets(summaries: list[Summary]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for s in summaries:
        if len(s.teachers) > len(out.get(s.task, ())):
            out[s.task] = s.teachers
    return out


def summary_table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table: method × task accuracy, then the normalised error."""
    summaries = summarise(results["cells"])
    full = _full_sets(summaries)
    tasks = [t["name"] for t in results.get("tasks", [])] or sorted({s.task for s in summaries})
    norm = normalised_error(summaries)
    header = ["method", *tasks, "error / STL (mean over tasks)"]
    rows = []
    for method in _order([s.method for s in summaries]):
        row = [method_label(method)]
        for task in tasks:
            match = [
                s
                for s in summaries
                if s.task == task
                and s.method == method
                and (method == "none" or s.teachers == full.get(task))
            ]
            row.append(_pct(match[0].mean, match[0].stderr) if match else "—")
        value = norm.get(method)
        row.append("—" if value is None else f"{value:.3f}")
        rows.append(row)
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# -- figures ------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fig_normalised(summaries: list[Summary], path: Path) -> bool:
    per_task = normalised_error_by_task(summaries)
    avg = normalised_error(summaries)
    methods = [m for m in _order(list(avg)) if m != "none"]
    if not methods:
        return False
    plt = _plt()
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


def _fig_accuracy(summaries: list[Summary], tasks: list[str], path: Path) -> bool:
    full = _full_sets(summaries)
    if not tasks:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        rows = [
            s for s in summaries if s.task == task and (s.method == "none" or s.teachers == full.get(task))
        ]
        order = _order([x.method for x in rows])
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


def _ablation_rows(
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


def _fig_ablation(summaries: list[Summary], method: str, path: Path) -> bool:
    table = _ablation_rows(summaries, method)
    if not table:
        return False
    plt = _plt()
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
        ax.set_xticks(xs, [_subset_label(r[0]).replace(" + ", "\n+ ") for r in rows], fontsize=7)
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


def _fig_mu(shares: dict[str, dict[str, tuple[float, float]]], path: Path) -> bool:
    if not shares:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(2.2 * len(shares) + 2.5, 3.6))
    tasks = sorted(shares)
    seen: dict[str, int] = {}
    for i, task in enumerate(tasks):
        bottom = 0.0
        for teacher, (mean, _se) in shares[task].items():
            color = f"C{seen.setdefault(_short(teacher), len(seen))}"
            ax.bar(i, mean, bottom=bottom, color=color, label=_short(teacher), alpha=0.85)
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


def _strength_points(summaries: list[Summary]) -> list[tuple[str, str, tuple[str, ...], float, float]]:
    probes = {(s.task, s.teachers): s.mean for s in summaries if s.method == PROBE}
    pts = []
    for s in summaries:
        if s.method in ("none", PROBE) or not s.teachers:
            continue
        if (s.task, s.teachers) in probes:
            pts.append((s.task, s.method, s.teachers, probes[(s.task, s.teachers)], s.mean))
    return pts


def _fig_strength(summaries: list[Summary], path: Path) -> bool:
    pts = _strength_points(summaries)
    if not pts:
        return False
    plt = _plt()
    tasks = sorted({p[0] for p in pts})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        stl = [s.mean for s in summaries if s.task == task and s.method == "none"]
        for j, method in enumerate(_order([p[1] for p in pts if p[0] == task])):
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
                        _subset_label(teachers),
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


def _fig_cost(results: dict[str, Any], path: Path) -> bool:
    teachers = results.get("teachers") or []
    students = results.get("students") or []
    if not teachers and not students:
        return False
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, t in enumerate(teachers):
        if t.get("seconds_per_1k_rows") is None:
            continue
        x = (t.get("params") or 0) / 1e6
        a1.scatter(x, t["seconds_per_1k_rows"], color=f"C{i % 10}")
        a1.annotate(f"{_short(t['teacher'])}\n({t['task']})", (x, t["seconds_per_1k_rows"]), fontsize=6)
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
        "normalised_error.png": lambda p: _fig_normalised(summaries, p),
        "accuracy.png": lambda p: _fig_accuracy(summaries, tasks, p),
        "ablation.png": lambda p: _fig_ablation(summaries, ablation_method, p),
        "mu_share.png": lambda p: _fig_mu(shares, p),
        "teacher_strength.png": lambda p: _fig_strength(summaries, p),
        "cost.png": lambda p: _fig_cost(results, p),
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
                _order([x.method for x in summaries]).index(s.method),
                len(s.teachers),
                s.teachers,
            ),
        ):
            beta = s.beta if s.method not in ("none", PROBE) else "—"
            rows.append(
                [method_label(s.method), _subset_label(s.teachers), beta, _pct(s.mean, s.stderr), s.n]
            )
        md += [_md_table(["method", "teachers", "β", "accuracy %", "seeds"], rows), ""]

    md += _ablation_section(summaries, ablation_method, figures)
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
    md += _cost_section(results, figures)
    md += _tuning_section(results)
    md += [
        "## Reproduce",
        "",
        f"`fusion-aft bench {results.get('suite', {}).get('name', 'SUITE')} --out DIR` (finished cells are "
        "reused; delete DIR/cells to start over).",
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
    table = _ablation_rows(summaries, method)
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
                note = f"{gain:+.1f} pt vs best single ({_subset_label(best_single[0])})"
            rows.append(
                [
                    task,
                    _subset_label(teachers),
                    _pct(s.mean, s.stderr),
                    _pct(probe.mean) if probe else "—",
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
            widths[t["task"]][_short(t["teacher"])] = int(t["width"])
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
            width = widths[task].get(_short(teacher))
            col = f"{100 * width / total:.1f}" if width and total else "—"
            rows.append([task, _short(teacher), _pct(mean, se), col])
    md += [_md_table(["task", "teacher", "μ share %", "column share %"], rows), ""]
    if "mu_share.png" in figures:
        md += ["![mu share](mu_share.png)", ""]
    return md


def _cost_section(results: dict[str, Any], figures: list[str]) -> list[str]:
    teachers = results.get("teachers") or []
    students = results.get("students") or []
    if not teachers and not students:
        return []
    md = [
        "## Cost",
        "",
        "Teacher features are extracted once per task and cached; training never runs a teacher.",
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
    md = [
        "## β tuning (folds of the labelled training rows; the test split is never used)",
        "",
        "Per β: mean holdout cross-entropy ± its standard error over the folds (mean holdout accuracy %). "
        "The chosen β is the largest whose mean is within one standard error of the lowest.",
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
            rows.append([task, method_label(method), ", ".join(parts), f"{info['chosen']:g}"])
    md += [_md_table(["task", "method", "β: holdout CE ± SE (accuracy %)", "chosen β"], rows), ""]
    return md
