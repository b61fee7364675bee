"""AFT against the student alone with the defaults, on public tasks loaded as a user's CSV files.

For every task and seed it trains the student alone (``--method none``) and AFT with ``--beta
auto`` (3-fold cross-validation of β on the labelled rows), with no ``--student`` (the default
pretrained student of the modality) and every other setting at its default, the way
``fusion-aft train --dataset FILE.csv`` does. A task ``NAME`` is read from ``TASKS/NAME.csv``;
when ``TASKS/NAME-test.csv`` exists it is the test split (``test_path``), else the default 20 %
split of the file. Finished runs are reused (a run folder with ``result.json`` is not trained
again). Writes ``defaults.md``, ``defaults.json`` and ``defaults.png`` into ``--out``, and each AFT
run's ``sweep.json`` under ``sweeps/``, with a replay of the sweep's early stop on it: the β the
whole grid chose against the β chosen from the candidates the early stop would have run.

    python benchmarks/public_tasks.py --out tasks
    python benchmarks/defaults_on_public_tasks.py --tasks-dir tasks --tasks bbc800,subj800 \\
        --runs runs/defaults --out benchmarks/results/public/defaults
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEFAULT_TEACHERS = "all-minilm-l6-v2,paraphrase-minilm-l3-v2"
#: config keys that choose β from the recorded candidates or set the final run's length: a sweep
#: recorded under other values of them is reused as it is
CHOICE_KEYS = frozenset({"beta_zero_unless_better", "beta_accuracy_guard", "beta_tie_break", "final_steps"})


def run_or_reuse(folder: Path, sweep_from: Path | None = None, **options: Any) -> dict[str, Any]:
    """The ``result.json`` of the run in ``folder``, trained first unless it finished before.

    ``sweep_from``: a run folder of the same task and seed whose ``sweep.json`` holds candidates
    to reuse (same code, folds and candidate length): they are copied into ``folder``, so only
    the missing candidates and the final run are trained, and the choice is made afresh."""
    import shutil

    import fusion_aft
    from fusion_aft.training import load_config

    done = folder / "result.json"
    if not done.is_file():
        recorded = sweep_from / "sweep.json" if sweep_from is not None else None
        if recorded is not None and recorded.is_file() and not folder.exists():
            # the recorded run's config.json with the keys added since, and those that only choose
            # among the candidates or set the final run, at this run's values (the resumed run
            # refuses any other difference), and its candidates
            config = json.loads((sweep_from / "config.json").read_text(encoding="utf8"))
            now = load_config(None, out=str(folder), **options).model_dump(mode="json")
            config.update({k: v for k, v in now.items() if k not in config or k in CHOICE_KEYS})
            folder.mkdir(parents=True)
            (folder / "config.json").write_text(json.dumps(config), encoding="utf8")
            shutil.copyfile(recorded, folder / "sweep.json")
            options["resume"] = True
        fusion_aft.train(out=str(folder), **options)
    return json.loads(done.read_text(encoding="utf8"))


def replay_early_stop(sweep: dict[str, Any], patience: int = 2) -> dict[str, Any]:
    """The β chosen from the candidates an early-stopped sweep would have run, against the whole
    grid's choice (both from the recorded per-fold holdout losses)."""
    from fusion_aft.training.sweep import ruled_out_past_minimum, summarise_runs

    runs, rule = sweep["runs"], sweep["rule"]
    order = sorted({float(r["beta"]) for r in runs})
    kept: list[dict[str, Any]] = []
    for beta in order:
        if ruled_out_past_minimum(kept, rule) >= patience:
            break
        kept += [r for r in runs if float(r["beta"]) == beta]
    ran = len({float(r["beta"]) for r in kept})
    return {"patience": patience, "betas_run": ran, "grid": len(sweep.get("grid") or order),
            "beta": summarise_runs(
                kept, rule, sweep["metric"], sweep.get("zero_unless_better", False),
                sweep.get("accuracy_guard"), sweep.get("tie_break", "largest"),
            )["best_beta"],
            "whole_grid_beta": sweep["best_beta"],
            "stopped_early": bool(sweep.get("skipped"))}


def mean_se(values: list[float]) -> tuple[float, float]:
    from fusion_aft.training.selection import summarise

    stats = summarise(values)
    return stats["mean"], stats["stderr"]


def task_options(tasks_dir: Path, name: str) -> tuple[dict[str, Any], Path]:
    """``fusion_aft.train`` options that load task ``name`` (with its ``-test`` file when there is
    one), and that test file's path."""
    test = tasks_dir / f"{name}-test.csv"
    options: dict[str, Any] = {"dataset": str(tasks_dir / f"{name}.csv")}
    if test.is_file():
        options["dataset_options"] = {"test_path": str(test)}
    return options, test


def task_runs(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """STL and AFT per seed on one task, with the test rows and the β each AFT run chose."""
    options, test = task_options(args.tasks_dir, name)
    seeds = []
    for seed in args.seeds:
        stl = run_or_reuse(args.runs / f"{name}-stl-s{seed}", method="none", seed=seed, **options)
        aft_dir = args.runs / f"{name}-aft-s{seed}"
        reuse = args.reuse_sweeps / aft_dir.name if args.reuse_sweeps else None
        aft = run_or_reuse(aft_dir, reuse, method="aft", teachers=args.teachers, beta="auto", seed=seed,
                           **options)
        sweep = json.loads((aft_dir / "sweep.json").read_text(encoding="utf8"))
        (args.out / "sweeps").mkdir(parents=True, exist_ok=True)
        (args.out / "sweeps" / f"{name}-s{seed}.json").write_text(json.dumps(sweep, indent=1) + "\n",
                                                                  encoding="utf8")
        seeds.append(
            {
                "seed": seed,
                "stl": stl["test_accuracy"],
                "aft": aft["test_accuracy"],
                "beta": aft["beta"],
                # the β the holdout loss chose but holdout accuracy set aside (None: not vetoed)
                "beta_vetoed": aft.get("beta_accuracy_vetoed"),
                "stl_steps": stl["steps"],
                "aft_steps": aft["steps"],
                "stl_seconds": stl["wall_time_s"],
                # the candidates' training time as recorded in sweep.json (also when a sweep was
                # resumed) plus the final run: what the run costs once the bank exists
                "aft_seconds": (aft.get("sweep_wall_time_s") or 0.0) + aft["final_run_wall_time_s"],
                "sweep_seconds": aft.get("sweep_wall_time_s"),
                "student": aft["student"],
                "n_labelled": aft["n_labelled"],
                "n_test": aft["n_test"],
                "early_stop": replay_early_stop(sweep),
            }
        )
    diffs = [s["aft"] - s["stl"] for s in seeds]
    return {
        "task": name,
        "test_file": test.name if test.is_file() else None,
        "seeds": seeds,
        "stl": mean_se([s["stl"] for s in seeds]),
        "aft": mean_se([s["aft"] for s in seeds]),
        "aft_minus_stl": mean_se(diffs),
        "aft_above_on_every_seed": all(d > 0 for d in diffs),
    }


def _beta_cell(seed: dict[str, Any]) -> str:
    vetoed = seed.get("beta_vetoed")
    return f"{seed['beta']:g}" + (f" ({vetoed:g} vetoed on accuracy)" if vetoed is not None else "")


def write_markdown(results: list[dict[str, Any]], path: Path) -> None:
    lines = [
        "# AFT against the student alone, default settings, public tasks",
        "",
        "`fusion-aft train --dataset FILE.csv --method none` against `--method aft --teachers "
        f"{DEFAULT_TEACHERS} --beta auto`, no `--student`; accuracy on the test rows (%).",
        "",
        "| task | labelled / test rows | seed | STL | AFT | β chosen | AFT − STL | steps, STL / AFT final "
        "| STL s | AFT s (sweep + final run) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for s in r["seeds"]:
            lines.append(
                f"| {r['task']} | {s['n_labelled']} / {s['n_test']} | {s['seed']} | {100 * s['stl']:.2f} | "
                f"{100 * s['aft']:.2f} | {_beta_cell(s)} | {100 * (s['aft'] - s['stl']):+.2f} | "
                f"{s.get('stl_steps', '')} / {s.get('aft_steps', '')} | "
                f"{s['stl_seconds']:.0f} | {s['aft_seconds']:.0f} |"
            )
        (m_stl, se_stl), (m_aft, se_aft), (m_d, se_d) = r["stl"], r["aft"], r["aft_minus_stl"]
        lines.append(
            f"| **{r['task']}** | | mean ± SE | {100 * m_stl:.2f} ± {100 * se_stl:.2f} | "
            f"{100 * m_aft:.2f} ± {100 * se_aft:.2f} | | **{100 * m_d:+.2f} ± {100 * se_d:.2f}** | | | |"
        )
    lines += [
        "",
        "Early stop of the β grid (`--beta-patience 2`) replayed on each recorded sweep (`sweeps/`); "
        "a sweep that itself stopped early holds only the candidates it ran:",
        "",
        "| task | seed | β run / grid | β chosen, early stop | β chosen, every recorded candidate | "
        "the sweep stopped early |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for s in r["seeds"]:
            e = s["early_stop"]
            lines.append(f"| {r['task']} | {s['seed']} | {e['betas_run']} / {e['grid']} | {e['beta']:g} | "
                         f"{e['whole_grid_beta']:g} | {'yes' if e.get('stopped_early') else 'no'} |")
    lines.append("")
    path.write_text("\n".join(lines), encoding="utf8")


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """AFT − STL per seed and task (points) with the mean ± SE (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.6 * len(results), 3.2), dpi=120)
    for i, r in enumerate(results):
        m, se = r["aft_minus_stl"]
        ax.bar(i, 100 * m, yerr=100 * se, color="tab:blue", alpha=0.4, capsize=4)
        ax.scatter([i] * len(r["seeds"]), [100 * (s["aft"] - s["stl"]) for s in r["seeds"]],
                   color="tab:blue", zorder=3)
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_xticks(range(len(results)), [r["task"] for r in results])
    ax.set_ylabel("AFT − STL, test accuracy (points)")
    ax.set_title("defaults: AFT (β auto) vs the student alone", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def task_arguments(description: str) -> argparse.ArgumentParser:
    """The command line shared by the scripts that read these tasks and their runs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tasks-dir", type=Path, default=Path("tasks"))
    parser.add_argument("--tasks", default="bbc800,subj800")
    parser.add_argument("--teachers", default=DEFAULT_TEACHERS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", type=Path, default=Path("runs/defaults"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/public/defaults"))
    return parser


def parse_task_arguments(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parsed arguments with the seeds and teachers as lists, and ``--out`` created."""
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.teachers = args.teachers.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def main() -> None:
    parser = task_arguments(__doc__.splitlines()[0])
    parser.add_argument("--reuse-sweeps", type=Path, default=None,
                        help="runs folder of an earlier invocation whose recorded β candidates to reuse")
    args = parse_task_arguments(parser)
    results = [task_runs(args, name) for name in args.tasks.split(",")]
    (args.out / "defaults.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf8")
    write_markdown(results, args.out / "defaults.md")
    plot(results, args.out / "defaults.png")
    print((args.out / "defaults.md").read_text(encoding="utf8"))  # noqa: T201 - a script's output


if __name__ == "__main__":
    main()
