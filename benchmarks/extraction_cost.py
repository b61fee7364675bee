"""Measure what extracting each bank of a suite costs, and rewrite the report's cost table with it.

A suite run records each bank's extraction time from its manifest (``extract_seconds``: the time
spent extracting, summed over the runs that wrote its chunks). Banks written before manifests
recorded that figure only give their age. This script extracts every (task, teacher, split) bank
of the suite again into a fresh cache, reads the manifests' ``extract_seconds``, and updates the
recorded ``extraction.json``, ``results.json`` (teacher rows), the report's "Cost" section and
``cost.png``, leaving every other recorded figure as it was.

    python benchmarks/extraction_cost.py [--suite offline] [--results benchmarks/results/offline]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import fusion_aft
from fusion_aft.bank.store import find_banks
from fusion_aft.bench.figures import fig_cost
from fusion_aft.bench.report import cost_section
from fusion_aft.bench.suite import load_suite
from fusion_aft.fileio import atomic_write_json


def measure(suite_name: str) -> dict[str, dict]:
    """(task|teacher|split) -> rows and extraction seconds, from freshly written banks."""
    suite = load_suite(suite_name)
    out: dict[str, dict] = {}
    for task in suite.tasks:
        for split in ("train", "test"):
            for ref in task.teachers:
                with tempfile.TemporaryDirectory() as cache:
                    fusion_aft.extract(
                        [ref],
                        task.dataset,
                        split,
                        cache_dir=cache,
                        dataset_options=dict(task.dataset_options),
                        progress=True,
                    )
                    ((_, manifest, _),) = find_banks(cache)
                    out[f"{task.name}|{ref}|{split}"] = {
                        "task": task.name,
                        "teacher": ref,
                        "split": split,
                        "rows": manifest.dataset.rows,
                        "seconds": manifest.extract_seconds,
                    }
    return out


def _replace_section(report: Path, section: list[str]) -> None:
    lines = report.read_text(encoding="utf8").split("\n")
    start = lines.index("## Cost")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    lines[start:end] = section
    report.write_text("\n".join(lines), encoding="utf8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="offline")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/offline"))
    args = parser.parse_args()
    measured = measure(args.suite)
    log = json.loads((args.results / "extraction.json").read_text(encoding="utf8"))
    log.update(measured)
    atomic_write_json(args.results / "extraction.json", log)

    results = json.loads((args.results / "results.json").read_text(encoding="utf8"))
    for row in results.get("teachers", []):
        parts = [measured.get(f"{row['task']}|{row['teacher']}|{s}") for s in ("train", "test")]
        if all(parts):
            row["rows"] = sum(p["rows"] for p in parts)
            row["extract_seconds"] = sum(p["seconds"] for p in parts)
            row["seconds_per_1k_rows"] = 1000 * row["extract_seconds"] / row["rows"]
    atomic_write_json(args.results / "results.json", results)
    figures = ["cost.png"] if fig_cost(results, args.results / "cost.png") else []
    _replace_section(args.results / "report.md", cost_section(results, figures))
    for key, entry in measured.items():
        print(f"{key}: {entry['rows']} rows, {entry['seconds']:.1f} s")


if __name__ == "__main__":
    main()
