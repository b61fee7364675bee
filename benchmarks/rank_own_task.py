"""Check the teacher ranking on a task of one's own: rank, then train AFT on every teacher subset.

Loads the task as a user would (a CSV/JSONL file or an image folder), ranks the teachers with
``fusion_aft.rank_teachers`` on the labelled training rows, trains AFT with a fixed β on every
subset of the teachers for several seeds (the ablation), and reports Spearman's correlation
between the ranking's subset scores (kernel alignment, and the probe for comparison) and AFT's
test accuracies, and whether the recommended subset is within one standard error of the best.
Finished runs are reused (a run folder with ``result.json`` is not trained again).

    python benchmarks/public_tasks.py --out tasks      # writes tasks/bbc.csv
    python benchmarks/rank_own_task.py --dataset tasks/bbc.csv --n-labels 100 \\
        --teachers all-minilm-l6-v2,paraphrase-minilm-l3-v2,glove-6b-50d \\
        --beta 3 --steps 1000 --seeds 0,1,2 --runs runs/bbc-ablation \\
        --out benchmarks/results/public/bbc-ranking
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path
from typing import Any

from fusion_aft.training.selection import summarise


def _spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def _mean_se(values: list[float]) -> dict[str, float]:
    """``mean``, standard error ``se`` (sample std / √n) and ``n`` of per-seed accuracies."""
    stats = summarise(values)
    return {"mean": stats["mean"], "se": stats["stderr"], "n": stats["n"]}


def _accuracy(folder: Path, **train_options: Any) -> float:
    """The test accuracy of the run in ``folder``, trained first unless it has finished before."""
    import fusion_aft

    done = folder / "result.json"
    if not done.is_file():
        fusion_aft.train(out=str(folder), **train_options)
    return float(json.loads(done.read_text(encoding="utf8"))["test_accuracy"])


def _stl(args: argparse.Namespace) -> list[float]:
    """The student alone (cross-entropy only) on the same rows, per seed, for reference."""
    return [
        _accuracy(args.runs / f"stl-s{seed}", dataset=str(args.dataset), method="none", steps=args.steps,
                  n_labels=args.n_labels, seed=seed)
        for seed in args.seeds
    ]


def _ablation(args: argparse.Namespace, teachers: list[str]) -> dict[tuple[str, ...], list[float]]:
    """AFT's test accuracy per teacher subset (sorted names) and seed, with the fixed β."""
    out: dict[tuple[str, ...], list[float]] = {}
    for k in range(1, len(teachers) + 1):
        for subset in itertools.combinations(teachers, k):
            out[tuple(sorted(subset))] = [
                _accuracy(args.runs / f"{'+'.join(subset)}-s{seed}", dataset=str(args.dataset), method="aft",
                          teachers=list(subset), beta=args.beta, steps=args.steps, n_labels=args.n_labels,
                          seed=seed)
                for seed in args.seeds
            ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--teachers", required=True)
    parser.add_argument("--n-labels", type=int, default=None)
    parser.add_argument("--beta", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import fusion_aft

    teachers = [t for t in args.teachers.split(",") if t]
    ranking = fusion_aft.rank_teachers(str(args.dataset), teachers, n_labels=args.n_labels, progress=False)
    ablation = _ablation(args, teachers)
    stl = _stl(args)
    stats = {k: _mean_se(v) for k, v in ablation.items()}
    subsets = [(tuple(sorted(s.teachers)), s) for s in ranking.subsets if tuple(sorted(s.teachers)) in stats]
    aft = [stats[k]["mean"] for k, _ in subsets]
    best = max(stats, key=lambda k: stats[k]["mean"])
    rec = tuple(sorted(ranking.recommended))
    gap = stats[best]["mean"] - stats[rec]["mean"]
    gap_se = math.sqrt(stats[best]["se"] ** 2 + stats[rec]["se"] ** 2)
    result: dict[str, Any] = {
        "dataset": args.dataset.name,
        "n_labels": args.n_labels,
        "beta": args.beta,
        "steps": args.steps,
        "seeds": args.seeds,
        "spearman_alignment": _spearman([s.alignment for _, s in subsets], aft),
        "spearman_probe": _spearman([s.accuracy for _, s in subsets], aft),
        "recommended": list(rec),
        "recommended_acc": stats[rec],
        "best": list(best),
        "best_acc": stats[best],
        "within_1se": gap <= gap_se,
        "stl": {**_mean_se(stl), "runs": stl},
        "ranking": ranking.as_dict(),
        "ablation": {"+".join(k): v for k, v in stats.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ranking.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf8")
    lines = [
        f"# Teacher ranking beside an AFT ablation on `{args.dataset.name}`",
        "",
        f"{args.n_labels or 'all'} labelled rows, AFT with β = {args.beta:g} and {args.steps} steps on every "
        f"subset, seeds {', '.join(map(str, args.seeds))} (mean ± SE of the test accuracy).",
        "",
        f"Spearman (subsets, n = {len(subsets)}): kernel alignment {result['spearman_alignment']:+.2f}, "
        f"probe {result['spearman_probe']:+.2f}. Recommended {' + '.join(rec)}: "
        f"{100 * stats[rec]['mean']:.1f} ± {100 * stats[rec]['se']:.1f} %; best {' + '.join(best)}: "
        f"{100 * stats[best]['mean']:.1f} ± {100 * stats[best]['se']:.1f} % "
        f"({'within' if result['within_1se'] else 'not within'} 1 SE). The student alone (STL): "
        f"{100 * result['stl']['mean']:.1f} ± {100 * result['stl']['se']:.1f} %.",
        "",
        ranking.table(),
        "",
        "| subset | kernel alignment | probe acc % (CV) | AFT test acc % |",
        "|---|---|---|---|",
    ]
    for k, s in subsets:
        lines.append(
            f"| {' + '.join(k)} | {s.alignment:.4f} ± {s.alignment_se:.4f} | {100 * s.accuracy:.1f} ± "
            f"{100 * s.se:.1f} | {100 * stats[k]['mean']:.1f} ± {100 * stats[k]['se']:.1f} |"
        )
    lines += [
        "",
        "Reproduce: `python benchmarks/public_tasks.py --out tasks` writes the CSV, then "
        f"`python benchmarks/rank_own_task.py --dataset tasks/{args.dataset.name}"
        + (f" --n-labels {args.n_labels}" if args.n_labels else "")
        + f" --teachers {','.join(teachers)} --beta {args.beta:g} --steps {args.steps} "
        f"--seeds {','.join(map(str, args.seeds))} --runs RUNS --out OUT`.",
    ]
    (args.out / "ranking.md").write_text("\n".join(lines) + "\n", encoding="utf8")
    print("\n".join(lines))  # noqa: T201 - a script's report


if __name__ == "__main__":
    main()
