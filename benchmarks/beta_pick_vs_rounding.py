"""Does a suite's β pick for AFT move when only the regulariser's floating-point rounding changes?

Runs the β-tuning cells of AFT on one task of a suite twice, with the fused linear-kernel
regulariser (the default) and with the plain one (`aft = { fused = false }`, the same formula
evaluated step by step), and compares per (β, fold) the holdout cross-entropy and accuracy and
the β each tie-break picks. Each variant is a one-task, AFT-only, one-seed copy of the suite
written into `--out`; with the fused regulariser its tuning cells have the suite's own digests,
so a recorded suite output folder given as `--reuse` lends them. Writes `rounding.json` and
`rounding.md` into `--out`.

    python benchmarks/beta_pick_vs_rounding.py --suite offline-pretrained --task rotten_tomatoes \\
        --reuse benchmarks/results/offline-pretrained-rt --out runs/rounding --jobs 2
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any


def variant(suite: Any, task: str, fused: bool) -> Any:
    """The suite cut to AFT on ``task`` with one seed and no ablation; ``fused=False`` sets AFT's
    plain regulariser."""
    from fusion_aft.bench.suite import parse_suite

    data = suite.only([task]).model_dump(mode="json", exclude_none=True)
    data.pop("source", None)
    data["name"] = f"{suite.name}-{'fused' if fused else 'plain'}"
    data["defaults"]["methods"] = ["aft"]
    data["defaults"]["seeds"] = data["defaults"]["seeds"][:1]
    data["defaults"]["beta_tie_break"] = "accuracy"  # the largest β within one SE is recorded beside
    if not fused:
        options = data["defaults"].setdefault("method_options", {})
        options["aft"] = {**options.get("aft", {}), "fused": False}
    data["tasks"][0]["ablation"] = False
    return parse_suite(data, source=f"<{data['name']}>")


def compare(fused: dict[str, Any], plain: dict[str, Any], task: str) -> dict[str, Any]:
    """Per (β, fold) differences of the tuning cells and each tie-break's pick (the runs choose by
    accuracy and record the largest β within one standard error beside it)."""

    def cells(results: dict[str, Any]) -> dict[tuple[float, int], dict[str, Any]]:
        return {(c["beta"], c["fold"]): c for c in results["cells"] if c["kind"] == "tune"}

    a, b = cells(fused), cells(plain)
    tuned_a, tuned_b = fused["tuning"][task]["aft"], plain["tuning"][task]["aft"]
    tuned = {"fused": tuned_a, "plain": tuned_b}
    picks = {
        "accuracy": {name: t["chosen"] for name, t in tuned.items()},
        "largest": {name: t["largest_within"] for name, t in tuned.items()},
    }
    per_beta = []
    for beta, acc in tuned_a["scores"]:
        key = f"{beta:g}"
        per_beta.append({
            "beta": beta,
            "cross_entropy_fused": tuned_a["cross_entropy"][key]["mean"],
            "cross_entropy_plain": tuned_b["cross_entropy"][key]["mean"],
            "accuracy_fused": acc,
            "accuracy_plain": dict(tuned_b["scores"])[beta],
        })
    return {
        "task": task,
        "picks": picks,
        "same_pick": all(p["fused"] == p["plain"] for p in picks.values()),
        "max_fold_cross_entropy_difference": max(abs(a[k]["cross_entropy"] - b[k]["cross_entropy"])
                                                 for k in a),
        "max_fold_accuracy_difference": max(abs(a[k]["accuracy"] - b[k]["accuracy"]) for k in a),
        "per_beta": per_beta,
    }


def write_markdown(record: dict[str, Any], path: Path) -> None:
    lines = [
        f"# AFT's β pick on `{record['task']}` with the fused and the plain regulariser",
        "",
        "| β | holdout CE, fused | plain | holdout accuracy %, fused | plain |",
        "|---|---|---|---|---|",
    ]
    for r in record["per_beta"]:
        lines.append(
            f"| {r['beta']:g} | {r['cross_entropy_fused']:.4f} | {r['cross_entropy_plain']:.4f} | "
            f"{100 * r['accuracy_fused']:.1f} | {100 * r['accuracy_plain']:.1f} |"
        )
    picks = record["picks"]
    lines += [
        "",
        f"Largest per-fold difference: cross-entropy {record['max_fold_cross_entropy_difference']:.1e}, "
        f"accuracy {100 * record['max_fold_accuracy_difference']:.1f} points.",
        f"Pick with the accuracy tie-break: fused {picks['accuracy']['fused']:g}, plain "
        f"{picks['accuracy']['plain']:g}; with the largest-β tie-break: fused "
        f"{picks['largest']['fused']:g}, plain {picks['largest']['plain']:g}.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf8")


def main() -> None:
    from fusion_aft.bench.runner import run_suite
    from fusion_aft.bench.suite import load_suite

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="offline-pretrained")
    parser.add_argument("--task", default="rotten_tomatoes")
    parser.add_argument("--reuse", type=Path, default=None, help="a recorded output folder of the suite")
    parser.add_argument("--out", type=Path, default=Path("runs/rounding"))
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    suite = load_suite(args.suite)
    results = {}
    for fused in (True, False):
        folder = args.out / ("fused" if fused else "plain")
        if fused and args.reuse is not None:
            (folder / "cells").mkdir(parents=True, exist_ok=True)
            for cell in (args.reuse / "cells").glob(f"tune-{args.task}-aft-*.json"):
                shutil.copy2(cell, folder / "cells" / cell.name)
        results[fused] = run_suite(variant(suite, args.task, fused), folder, progress=True, jobs=args.jobs)
    record = compare(results[True], results[False], args.task)
    (args.out / "rounding.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf8")
    write_markdown(record, args.out / "rounding.md")
    print((args.out / "rounding.md").read_text(encoding="utf8"))  # noqa: T201 - a script's output


if __name__ == "__main__":
    main()
