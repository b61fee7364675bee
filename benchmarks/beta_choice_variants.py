"""How each way of choosing β from a recorded sweep would have scored on the test rows.

The β sweep of ``fusion-aft train --beta auto`` (``sweep.json``) holds every candidate's holdout
cross-entropy and accuracy per fold, so the β each selection variant picks can be recomputed
without training. This script does that for the AFT runs of ``defaults_on_public_tasks.py`` and
trains the final run of every picked β once (``--beta B --steps <candidate steps>``, the run
``--beta auto`` trains after choosing B; β = 0 is the task's student alone). It writes
``variants.md`` and ``variants.json``: per task the test accuracy of AFT minus the student alone's
under each variant:

* the tie-break among the β within one standard error of the lowest holdout loss: ``largest``
  (the classic one-SE rule) or ``accuracy`` (the highest mean holdout accuracy);
* the accuracy check against the student alone (``beta_accuracy_guard``): ``off``, 2 standard
  errors or 0 (any drop of the mean holdout accuracy sets β back to 0).

Where the AFT run chose β with the current defaults, its test accuracy must equal the fixed-β
run's (same seed, rows and steps); the script checks it.

    python benchmarks/defaults_on_public_tasks.py --tasks-dir tasks --tasks subj800,gi800 --runs runs/defaults
    python benchmarks/beta_choice_variants.py --tasks-dir tasks --tasks subj800,gi800 --runs runs/defaults \\
        --out benchmarks/results/public/defaults-accuracy
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from defaults_on_public_tasks import mean_se, parse_task_arguments, run_or_reuse, task_arguments, task_options

#: (tie-break, accuracy guard in standard errors or None for off)
VARIANTS: tuple[tuple[str, float | None], ...] = (
    ("largest", None),
    ("largest", 2.0),
    ("largest", 0.0),
    ("accuracy", None),
    ("accuracy", 2.0),
    ("accuracy", 0.0),
)


def _label(variant: tuple[str, float | None]) -> str:
    tie_break, guard = variant
    return f"{tie_break}, check {'off' if guard is None else f'{guard:g} SE'}"


def variant_betas(sweep: dict[str, Any]) -> dict[str, float]:
    """The β each variant picks from the recorded runs of one sweep."""
    from fusion_aft.training.sweep import summarise_runs

    runs, rule, metric = sweep["runs"], sweep["rule"], sweep["metric"]
    keep_off = sweep.get("zero_unless_better", False)
    picks = {}
    for tie_break, guard in VARIANTS:
        choice = summarise_runs(runs, rule, metric, keep_off, guard, tie_break)
        picks[_label((tie_break, guard))] = float(choice["best_beta"])
    return picks


def task_variants(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Per seed the β each variant picks and its test accuracy minus the student alone's."""
    options, _ = task_options(args.tasks_dir, name)
    seeds = []
    for seed in args.seeds:
        stl = json.loads((args.runs / f"{name}-stl-s{seed}" / "result.json").read_text(encoding="utf8"))
        aft_dir = args.runs / f"{name}-aft-s{seed}"
        sweep = json.loads((aft_dir / "sweep.json").read_text(encoding="utf8"))
        aft = json.loads((aft_dir / "result.json").read_text(encoding="utf8"))
        picks = variant_betas(sweep)
        scores: dict[float, float] = {0.0: stl["test_accuracy"]}
        for beta in sorted(set(picks.values()) - {0.0}):
            folder = args.runs / f"{name}-beta{beta:g}-s{seed}"
            fixed = run_or_reuse(folder, method="aft", teachers=args.teachers, beta=beta, seed=seed,
                                 steps=sweep["candidate_steps"], **options)
            scores[beta] = fixed["test_accuracy"]
        chosen = aft["beta"]
        if chosen != 0 and chosen in scores and not math.isclose(aft["test_accuracy"], scores[chosen]):
            raise SystemExit(f"{aft_dir}: --beta auto scored {aft['test_accuracy']} at β = {aft['beta']:g}, "
                             f"the fixed-β run {scores[aft['beta']]}: the runs are not the same")
        seeds.append({"seed": seed, "stl": stl["test_accuracy"], "betas": picks,
                      "gains": {k: scores[b] - stl["test_accuracy"] for k, b in picks.items()}})
    return {
        "task": name,
        "seeds": seeds,
        "gain": {_label(v): mean_se([s["gains"][_label(v)] for s in seeds]) for v in VARIANTS},
    }


def write_markdown(results: list[dict[str, Any]], path: Path) -> None:
    labels = [_label(v) for v in VARIANTS]
    lines = [
        "# Choosing β from the recorded sweeps: AFT − the student alone, test accuracy (points)",
        "",
        "Each cell: mean ± SE over seeds, then each seed's gain and the β picked. `largest` / `accuracy`: "
        "the tie-break among the β within one standard error of the lowest holdout loss; `check`: the "
        "accuracy check of the pick against β = 0 (off, 2 standard errors, any drop).",
        "",
        "| task | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    every: dict[str, list[float]] = {k: [] for k in labels}
    for r in results:
        cells = []
        for k in labels:
            m, se = r["gain"][k]
            per_seed = ", ".join(f"{100 * s['gains'][k]:+.1f} (β {s['betas'][k]:g})" for s in r["seeds"])
            cells.append(f"{100 * m:+.2f} ± {100 * se:.2f}: {per_seed}")
            every[k] += [s["gains"][k] for s in r["seeds"]]
        lines.append(f"| {r['task']} | " + " | ".join(cells) + " |")
    n = len(next(iter(every.values())))
    means = " | ".join(f"{100 * sum(v) / len(v):+.2f}" for v in every.values())
    lines.append(f"| mean of all {n} runs | {means} |")
    lines.append("")
    path.write_text("\n".join(lines), encoding="utf8")


def main() -> None:
    args = parse_task_arguments(task_arguments(__doc__.splitlines()[0]))
    results = [task_variants(args, name) for name in args.tasks.split(",")]
    (args.out / "variants.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf8")
    write_markdown(results, args.out / "variants.md")
    print((args.out / "variants.md").read_text(encoding="utf8"))  # noqa: T201 - a script's output


if __name__ == "__main__":
    main()
