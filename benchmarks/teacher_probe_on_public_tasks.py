"""The teachers' linear probe on each recorded β sweep's folds, against the student alone and AFT's gain.

For every task and seed of a `defaults_on_public_tasks.py` output folder (its `sweeps/` and
`variants.json`), the folds of `fusion-aft train --beta auto` are rebuilt exactly (the recorded
fold sizes are checked), the teachers' bank is opened (or extracted), and the probe the sweep
now records (`fusion_aft.training.teacher_probe`) is fitted on each fold's training part. It is
paired with the recorded β = 0 holdout accuracies and set beside AFT's test gain over the student
alone without the accuracy check (tie-break by accuracy) and with the defaults. Writes
`teacher-probe.json` and `teacher-probe.md` into `--out`.

    PYTHONPATH=C python benchmarks/public_tasks.py --out tasks   # the task files, as for the others
    python benchmarks/teacher_probe_on_public_tasks.py --tasks-dir tasks \\
        --tasks subj800,subj800u,bbc800,bbc800u,debates,convention800,gi800,bbcsent800 \\
        --out benchmarks/results/public/defaults-accuracy
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from defaults_on_public_tasks import (  # noqa: E402
    mean_se,
    parse_task_arguments,
    task_arguments,
    task_options,
)

#: the variant of β choice without the accuracy check, and the defaults (`beta_choice_variants.py`)
NO_CHECK, DEFAULTS = "accuracy, check off", "accuracy, check 0 SE"


def probe_seed(name: str, seed: int, args: Any) -> dict[str, Any]:
    """The probe on the folds of task ``name``'s recorded sweep for ``seed``."""
    import fusion_aft.data as datasets
    from fusion_aft.data.splits import kfold, training_rows
    from fusion_aft.training.config import TrainConfig
    from fusion_aft.training.run import ensure_bank, resolve_device
    from fusion_aft.training.teacher_probe import compare_with_student_alone, probe_folds

    options, _ = task_options(args.tasks_dir, name)
    cfg = TrainConfig(method="aft", teachers=args.teachers, beta="auto", seed=seed, **options)
    dataset = datasets.load(cfg.dataset, **cfg.dataset_options)
    rows = training_rows(dataset.split("train"), dataset.splits.get("unlabelled"), cfg.n_labels,
                         cfg.n_unlabelled, cfg.seed)
    bank = ensure_bank(cfg, dataset, rows.bank_rows(), resolve_device("cpu"))
    folds = kfold(rows.labelled, cfg.beta_folds, seed=cfg.seed)
    sweep = json.loads((args.out / "sweeps" / f"{name}-s{seed}.json").read_text(encoding="utf8"))
    if [len(hold) for _, hold in folds] != sweep["fold_sizes"]:
        raise SystemExit(f"{name} seed {seed}: the rebuilt folds do not match the recorded sweep")
    alone = {r["fold"]: r["holdout_accuracy"] for r in sweep["runs"] if r["beta"] == 0.0}
    return compare_with_student_alone(probe_folds(bank, folds), alone)


def write_markdown(rows: list[dict[str, Any]], path: Path) -> None:
    lines = [
        "# The teachers' linear probe on the β sweep's folds, against the student alone",
        "",
        "Per seed: probe − student alone on the same holdout folds (points, mean ± SE over 3 folds), "
        "then AFT − student alone on the test rows without the accuracy check and with the defaults.",
        "",
        "| task | seed | probe % | probe − STL (holdout) | AFT − STL, no check (test) "
        "| AFT − STL, defaults (test) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        probe = r["probe"]
        lines.append(
            f"| {r['task']} | {r['seed']} | {100 * probe['accuracy']:.1f} | "
            f"{100 * probe['vs_student_alone']:+.1f} ± {100 * probe['stderr_vs_student_alone']:.1f} | "
            f"{100 * r['gain_no_check']:+.2f} | {100 * r['gain_defaults']:+.2f} |"
        )
    below = [r for r in rows if r["probe"]["below_student_alone"]]
    gain, se = mean_se([r["gain_no_check"] for r in below]) if below else (float("nan"), float("nan"))
    lines += [
        "",
        f"Probe below the student alone: {len(below)} of {len(rows)} runs; AFT − STL there without the "
        f"check {100 * gain:+.2f} ± {100 * se:.2f} points.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf8")


def main() -> None:
    args = parse_task_arguments(task_arguments(__doc__.splitlines()[0]))
    variants = {v["task"]: {s["seed"]: s["gains"] for s in v["seeds"]}
                for v in json.loads((args.out / "variants.json").read_text(encoding="utf8"))}
    rows = []
    for name in args.tasks.split(","):
        for seed in args.seeds:
            gains = variants[name][seed]
            rows.append({"task": name, "seed": seed, "probe": probe_seed(name, seed, args),
                         "gain_no_check": gains[NO_CHECK], "gain_defaults": gains[DEFAULTS]})
    (args.out / "teacher-probe.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf8")
    write_markdown(rows, args.out / "teacher-probe.md")
    print((args.out / "teacher-probe.md").read_text(encoding="utf8"))  # noqa: T201 - a script's output


if __name__ == "__main__":
    main()
