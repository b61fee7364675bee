"""The files of a suite run: results.json, results.csv, the extraction log and the report's rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from fusion_aft.bench.cell import TaskContext, bank_keys
from fusion_aft.fileio import atomic_write_json, atomic_write_text

__all__ = ["load_extraction_log", "merge_extraction", "task_row", "teacher_rows", "write_results"]


def load_extraction_log(out: Path) -> dict[str, dict[str, Any]]:
    path = out / "extraction.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf8"))
        except (OSError, json.JSONDecodeError):
            pass
    return {}


def merge_extraction(log_: dict[str, dict[str, Any]], entries: list[dict[str, Any]]) -> None:
    """Record each bank's extraction time, as its manifest says (the sum over the runs that wrote
    it); a bank that does not record it keeps an earlier entry of the same rows."""
    for e in entries:
        key = f"{e['task']}|{e['teacher']}|{e['split']}"
        old = log_.get(key)
        if old is None or old.get("rows") != e["rows"] or e["seconds"] is not None:
            log_[key] = e


def task_row(ctx: TaskContext) -> dict[str, Any]:
    t = ctx.task
    return {
        "name": t.name,
        "dataset": t.dataset,
        "dataset_options": t.dataset_options,
        "classes": ctx.num_classes,
        "labels": len(ctx.labelled),
        "n_unlabelled": len(ctx.unlabelled) if ctx.unlabelled is not None else 0,
        "n_test": len(ctx.test),
        "n_holdout": len(ctx.holdout),
        "student": t.student,
        "teachers": t.teachers,
        "steps": t.steps,
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "lr": t.lr,
        "objective_lr": t.objective_lr,
        "seeds": t.seeds,
        "beta": t.beta,
    }


def teacher_rows(ctx: TaskContext, extraction_log: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    import fusion_aft

    rows = []
    bank = ctx.banks["train"]
    keys = bank_keys(bank, tuple(ctx.task.teachers))
    for ref, key in zip(ctx.task.teachers, keys, strict=True):
        parts = [extraction_log.get(f"{ctx.task.name}|{ref}|{s}") for s in ("train", "test")]
        known = all(p and p.get("seconds") is not None for p in parts)
        secs = sum(p["seconds"] for p in parts if p) if known else None
        nrows = sum(p["rows"] for p in parts if p)
        try:
            params = fusion_aft.teachers.get(ref.split("?")[0]).parameters
        except Exception:
            params = None
        rows.append(
            {
                "task": ctx.task.name,
                "teacher": ref,
                "width": bank.dims[key],
                "params": params,
                "rows": nrows,
                "extract_seconds": secs,
                "seconds_per_1k_rows": 1000 * secs / nrows if secs and nrows else None,
            }
        )
    return rows


def write_results(results: dict[str, Any], out: Path) -> None:
    """results.json, results.csv (one row per cell), report.md and the figures."""
    from fusion_aft.bench.report import write_report

    atomic_write_json(out / "results.json", results)
    fields = [
        "task",
        "kind",
        "method",
        "teachers",
        "seed",
        "beta",
        "accuracy",
        "scored_on",
        "n_scored",
        "n_labelled",
        "n_unlabelled",
        "steps",
        "train_seconds",
        "student_params",
        "mu_share",
        "key",
    ]
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for r in results["cells"]:
        row = dict(r)
        row["teachers"] = "+".join(r.get("teachers") or [])
        if r.get("mu_share"):
            row["mu_share"] = ";".join(f"{k}={v:.4f}" for k, v in r["mu_share"].items())
        writer.writerow(row)
    atomic_write_text(out / "results.csv", table.getvalue())
    results["figures"] = write_report(results, out)
    atomic_write_json(out / "results.json", results)
