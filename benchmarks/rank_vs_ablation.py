"""Set the teacher ranking beside the offline suite's recorded AFT ablation.

For every task of the suite, rank its teachers with ``fusion_aft.rank_teachers`` on the task's
labelled training rows (the suite's label draw; never the test split), then compare with the
recorded AFT accuracies of every teacher subset (``results.csv``):

* the recommended subset's AFT accuracy against the best subset's, and whether the gap is within
  one standard error (of the difference of the two means over seeds);
* the same for the parsimonious rule (``min_gain_se = +1``);
* Spearman's rank correlation between the ranking's score of each subset (the kernel-target
  alignment of its mean kernel; the cross-validated probe accuracy beside it for comparison) and
  AFT's accuracy with that subset;
* the time of ``teachers rank`` with the banks cached.

Writes ``ranking.md``, ``ranking.json`` and ``ranking.png`` next to the results.

    python benchmarks/rank_vs_ablation.py [--results benchmarks/results/offline] [--suite offline]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def _ablation(results_csv: Path, task: str) -> dict[tuple[str, ...], dict[str, float]]:
    """Subset (teacher refs) -> AFT test accuracy mean, standard error and seeds, from results.csv."""
    acc: dict[tuple[str, ...], list[float]] = defaultdict(list)
    with results_csv.open(encoding="utf8") as f:
        for row in csv.DictReader(f):
            if row["task"] == task and row["kind"] == "run" and row["method"] == "aft":
                acc[tuple(sorted(row["teachers"].split("+")))].append(float(row["accuracy"]))
    out = {}
    for subset, values in acc.items():
        v = np.asarray(values)
        se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")
        out[subset] = {"mean": float(v.mean()), "se": se, "n": int(v.size)}
    return out


def _test_probe(results_csv: Path, task: str) -> dict[tuple[str, ...], float]:
    """Subset -> the recorded linear probe's test accuracy (a reference the ranking cannot use)."""
    out = {}
    with results_csv.open(encoding="utf8") as f:
        for row in csv.DictReader(f):
            if row["task"] == task and row["kind"] == "run" and row["method"] == "probe":
                out[tuple(sorted(row["teachers"].split("+")))] = float(row["accuracy"])
    return out


def _spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic) if len(x) > 2 else float("nan")


def _short(ref: str) -> str:
    return ref.split("?")[0]


def _label(subset: tuple[str, ...] | list[str]) -> str:
    return " + ".join(_short(t) for t in subset)


def _compare(rec: list[str], ablation: dict[tuple[str, ...], dict[str, float]]) -> dict[str, Any]:
    best_key = max(ablation, key=lambda k: ablation[k]["mean"])
    best, got = ablation[best_key], ablation.get(tuple(sorted(rec)))
    out: dict[str, Any] = {
        "recommended": rec,
        "best": list(best_key),
        "best_acc": best["mean"],
        "best_se": best["se"],
    }
    if got is None:
        return {**out, "acc": None, "within_1se": None}
    gap = best["mean"] - got["mean"]
    se = math.sqrt(best["se"] ** 2 + got["se"] ** 2) if tuple(sorted(rec)) != best_key else 0.0
    return {**out, "acc": got["mean"], "acc_se": got["se"], "gap": gap, "gap_se": se, "within_1se": gap <= se}


def rank_task(task: Any, results_csv: Path) -> dict[str, Any]:
    import fusion_aft
    from fusion_aft.ranking import greedy_select

    kwargs = dict(
        dataset_options=task.dataset_options, n_labels=task.labels, seed=task.data_seed, progress=False
    )
    from fusion_aft.data.fingerprint import dataset_fingerprint
    from fusion_aft.ranking.banks import _cached
    from fusion_aft.ranking.rank import labelled_training_rows

    ds = fusion_aft.datasets.load(task.dataset, **task.dataset_options)
    train, _ = labelled_training_rows(ds, task.labels, task.data_seed)
    dfp = dataset_fingerprint(train)
    if any(_cached(t, train, ds.name, dfp, None, "fp16") is None for t in task.teachers):
        fusion_aft.rank_teachers(task.dataset, task.teachers, **kwargs)  # extracts the missing banks
    t0 = time.perf_counter()
    r = fusion_aft.rank_teachers(task.dataset, task.teachers, **kwargs)  # banks cached
    seconds = time.perf_counter() - t0
    width = {t.teacher: t.width for t in r.teachers}
    cost = {t.teacher: t.seconds_per_1k_rows for t in r.teachers}
    key = {tuple(sorted(k)): v for k, v in r.alignment_scores.items()}
    strict = greedy_select(
        list(task.teachers), lambda s: key[tuple(sorted(s))], width, cost, min_gain_se=1.0
    ).chosen
    ablation = _ablation(results_csv, task.name)
    scored = [s for s in r.subsets if tuple(sorted(s.teachers)) in ablation]
    aft = [ablation[tuple(sorted(s.teachers))]["mean"] for s in scored]
    probe = _test_probe(results_csv, task.name)
    ref = [(probe[k], v["mean"]) for k, v in ablation.items() if k in probe]
    return {
        "task": task.name,
        "spearman_test_probe": _spearman([p[0] for p in ref], [p[1] for p in ref]),
        "ranking": r.as_dict(),
        "table": r.table(),
        "default_rule": _compare(list(r.recommended), ablation),
        "parsimonious_rule": _compare(list(strict), ablation),
        "score": r.score,
        "spearman": _spearman([s.value(r.score) for s in scored], aft),
        "spearman_probe": _spearman([s.accuracy for s in scored], aft),
        "n_subsets": len(scored),
        "rank_seconds_cached": seconds,
        "rank_seconds_parts": r.seconds,
        "ablation": {"+".join(k): v for k, v in ablation.items()},
    }


def _markdown(rows: list[dict[str, Any]], suite: str) -> str:
    md = [
        "# Teacher ranking beside the AFT ablation",
        "",
        f"`fusion-aft teachers rank` on each task of the `{suite}` suite (the task's labelled training rows; "
        "never the test split), next to the recorded AFT test accuracy of every teacher subset "
        "(mean ± standard error over 3 seeds). Subsets are scored by the kernel-target alignment of the "
        "mean of their teachers' kernels (the kernel AFT transfers, against the labels' kernel). Within "
        "1 SE: the gap to the best subset is at most the standard error of the difference of the two "
        "means. Default rule: a teacher joins unless it lowers the alignment by more than one jackknife "
        "standard error; parsimonious rule: only when it raises it by more than one.",
        "",
        "| task | recommended (default rule) | its AFT % | best subset | best AFT % | gap (SE) | within 1 SE "
        "| parsimonious rule | its AFT % | within 1 SE | Spearman (subsets) | Spearman, probe score "
        "| rank s, banks cached |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d, p = r["default_rule"], r["parsimonious_rule"]

        def acc(c: dict[str, Any]) -> str:
            return "—" if c["acc"] is None else f"{100 * c['acc']:.1f} ± {100 * c['acc_se']:.1f}"

        def yes(c: dict[str, Any]) -> str:
            return "—" if c["within_1se"] is None else ("yes" if c["within_1se"] else "no")

        md.append(
            f"| {r['task']} | {_label(d['recommended'])} | {acc(d)} | {_label(d['best'])} | "
            f"{100 * d['best_acc']:.1f} ± {100 * d['best_se']:.1f} | "
            + ("—" if d["acc"] is None else f"{100 * d['gap']:.2f} ({100 * d['gap_se']:.2f})")
            + f" | {yes(d)} | {_label(p['recommended'])} | {acc(p)} | {yes(p)} | "
            f"{r['spearman']:+.2f} (n={r['n_subsets']}) | {r.get('spearman_probe', float('nan')):+.2f} | "
            f"{r['rank_seconds_cached']:.1f} |"
        )
    md += [
        "",
        "For reference, the same correlation with the recorded test-split probe of each subset in place of "
        "the ranking's score (a number the ranking cannot use, since it never reads test rows): "
        + ", ".join(f"{r['task']} {r.get('spearman_test_probe', float('nan')):+.2f}" for r in rows)
        + ". The probe ranks subsets by what a linear read-out of their concatenated features predicts; "
        "AFT transfers their kernel instead, and the alignment of that kernel with the labels "
        "correlates positively with AFT's accuracies on every task, including Rotten Tomatoes, where "
        "the probe's correlation is negative. The seven Rotten Tomatoes subsets' AFT accuracies span "
        "under two points with standard errors of 0.2–0.9 points over seeds, so no score can order "
        "them exactly. On a task outside the suite (BBC News as a user's CSV, 100 labels, 7 subsets "
        "× 3 seeds) the alignment's Spearman is +0.96 and the probe's +0.19: "
        "[../public/bbc-ranking/ranking.md](../public/bbc-ranking/ranking.md). On a subjectivity task "
        "(800 sentences as a user's CSV), whose seven subsets' AFT accuracies lie within six test rows "
        "of each other, it is −0.02 and the probe's −0.50: "
        "[../public/subj-ranking/ranking.md](../public/subj-ranking/ranking.md).",
        "",
        "![ranking score vs AFT accuracy](ranking.png)",
        "",
    ]
    for r in rows:
        md += [
            f"## {r['task']}",
            "",
            r["table"],
            "",
            "| subset | kernel alignment (training rows) | probe acc % (CV, training rows) "
            "| AFT test acc % |",
            "|---|---|---|---|",
        ]
        ab = r["ablation"]
        for s in r["ranking"]["subsets"]:
            a = ab.get("+".join(sorted(s["teachers"])))
            md.append(
                f"| {_label(s['teachers'])} | {s['alignment']:.4f} ± {s['alignment_se']:.4f} | "
                f"{100 * s['accuracy']:.1f} ± {100 * s['se']:.1f} | "
                + ("—" if a is None else f"{100 * a['mean']:.1f} ± {100 * a['se']:.1f}")
                + " |"
            )
        names = [_short(t) for t in r["ranking"]["cka_teachers"]]
        cka = r["ranking"]["cka"]
        md += [
            "",
            "Linear CKA: "
            + "; ".join(
                f"{names[i]} ~ {names[j]} {cka[i][j]:.2f}"
                for i in range(len(names))
                for j in range(i + 1, len(names))
            ),
            "",
        ]
    md += [
        "## Reproduce",
        "",
        "`python benchmarks/rank_vs_ablation.py` (extracts the training banks it lacks "
        "first; the times above are of a run with the banks cached, on an otherwise idle 2-core machine).",
        "",
    ]
    return "\n".join(md)


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.8), dpi=120, squeeze=False)
    for ax, r in zip(axes[0], rows, strict=True):
        ab = r["ablation"]
        rec = sorted(r["default_rule"]["recommended"])
        for s in r["ranking"]["subsets"]:
            a = ab.get("+".join(sorted(s["teachers"])))
            if a is None:
                continue
            colour = "C2" if sorted(s["teachers"]) == rec else ("C0" if len(s["teachers"]) == 1 else "C7")
            ax.errorbar(
                s["alignment"],
                100 * a["mean"],
                xerr=s["alignment_se"],
                yerr=100 * a["se"],
                fmt="o",
                color=colour,
                capsize=2,
            )
            ax.annotate(
                _label(s["teachers"]),
                (s["alignment"], 100 * a["mean"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set_title(f"{r['task']} (Spearman {r['spearman']:+.2f})", fontsize=9)
        ax.set_xlabel("ranking: kernel alignment (training rows)", fontsize=8)
        ax.set_ylabel("AFT test accuracy %", fontsize=8)
        ax.grid(True, alpha=0.3)
    fig.suptitle("teacher subsets: ranking score vs AFT (green: recommended)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/offline"))
    parser.add_argument("--suite", default="offline")
    parser.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    parser.add_argument("--render-only", action="store_true", help="rewrite ranking.md/png from ranking.json")
    args = parser.parse_args()
    if args.render_only:
        rows = json.loads((args.results / "ranking.json").read_text(encoding="utf8"))
        for r in rows:
            probe = _test_probe(args.results / "results.csv", r["task"])
            ab = {tuple(sorted(k.split("+"))): v for k, v in r["ablation"].items()}
            ref = [(probe[k], v["mean"]) for k, v in ab.items() if k in probe]
            r["spearman_test_probe"] = _spearman([p[0] for p in ref], [p[1] for p in ref])
        (args.results / "ranking.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf8")
        (args.results / "ranking.md").write_text(_markdown(rows, args.suite), encoding="utf8")
        _plot(rows, args.results / "ranking.png")
        return
    from fusion_aft.bench.suite import load_suite

    suite = load_suite(args.suite)
    wanted = {t for t in args.tasks.split(",") if t}
    rows = [
        rank_task(t, args.results / "results.csv") for t in suite.resolved() if not wanted or t.name in wanted
    ]
    (args.results / "ranking.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf8")
    (args.results / "ranking.md").write_text(_markdown(rows, suite.name), encoding="utf8")
    _plot(rows, args.results / "ranking.png")


if __name__ == "__main__":
    main()
