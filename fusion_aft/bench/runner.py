"""Run a suite: banks first, then β tuning by k-fold cross-validation, then every test cell; resumable.

Per task: the dataset is loaded, the label budget drawn (``data_seed``, the same rows for every
method and seed), each teacher's bank extracted once for the train and test splits (cached by
fingerprint, so reruns and later suites reuse them), then

1. ``tune`` cells: each tuned method × β × fold trains on the labelled rows minus that fold for
   part of the steps and is scored on the fold (never the test split); β is chosen by the
   one-standard-error rule on the mean holdout cross-entropy, the most accurate on the holdout
   among the β within it (``beta_tie_break``), as ``--beta auto`` does;
2. ``run`` cells: every (method, teacher subset, seed) trains on all labelled rows (plus the
   unlabelled rows for the regulariser when the suite says so; the same rows for every method)
   and is scored on the test split; the linear probe fits on the labelled rows' bank features.

Each finished cell is written atomically to ``OUT/cells/KEY.json``; a rerun skips it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from pathlib import Path
from typing import Any

from fusion_aft.bench.cell import TaskContext, prepare_task, probe_cell, student_cost, train_cell
from fusion_aft.bench.cells import Cell, run_cells, tune_cells
from fusion_aft.bench.console import render_summary
from fusion_aft.bench.output import (
    load_extraction_log,
    merge_extraction,
    task_row,
    teacher_rows,
    write_results,
)
from fusion_aft.bench.parallel import run_parallel
from fusion_aft.bench.store import CellStore
from fusion_aft.bench.suite import PROBE, Suite
from fusion_aft.bench.validate import validate_names
from fusion_aft.fileio import atomic_write_json
from fusion_aft.machine import environment
from fusion_aft.training.run import resolve_device
from fusion_aft.training.selection import TieBreak, choose_beta, summarise

__all__ = ["TaskContext", "environment", "render_summary", "run_suite"]

log = logging.getLogger(__name__)


def _choose(records: list[dict[str, Any]], tie_break: TieBreak = "accuracy") -> dict[str, Any]:
    """Per method: β by the one-standard-error rule on the folds' holdout cross-entropy, the tie
    among the β within it broken by ``tie_break`` (:mod:`fusion_aft.training.selection`, the
    trainer's own rule), with the per-β spread and what the largest-β tie-break would take."""
    losses: dict[str, dict[float, list[float]]] = {}
    accs: dict[str, dict[float, list[float]]] = {}
    for r in records:
        beta = float(r["beta"])
        losses.setdefault(r["method"], {}).setdefault(beta, []).append(float(r["cross_entropy"]))
        accs.setdefault(r["method"], {}).setdefault(beta, []).append(float(r["accuracy"]))
    out = {}
    for method, per_beta in losses.items():
        accuracy = {b: summarise(accs[method][b])["mean"] for b in per_beta}
        choice = choose_beta(per_beta, "one_se", prefer=accuracy if tie_break == "accuracy" else None)
        out[method] = {
            "scores": [(b, accuracy[b]) for b in sorted(per_beta)],
            "cross_entropy": {
                f"{b:g}": {k: choice["stats"][b][k] for k in ("mean", "std", "stderr", "n")}
                for b in sorted(per_beta)
            },
            "rule": "one_se",
            "tie_break": tie_break,
            "min_beta": choice["min_beta"],
            "largest_within": choose_beta(per_beta, "one_se")["beta"],
            "chosen": choice["beta"],
            # the loss still falls at the grid's edge: the best β may lie beyond it
            "lowest_at_largest_beta": len(per_beta) > 1 and choice["min_beta"] == max(per_beta),
        }
    return out


def run_suite(
    suite: Suite, out_dir: str | Path, device: str | None = None, progress: bool = True, jobs: int = 1
) -> dict[str, Any]:
    """Run (or resume) every cell of ``suite`` into ``out_dir``; write results and the report.

    ``jobs > 1`` trains the cells of each phase (β tuning, then the test runs) of a task in that
    many worker processes (:mod:`fusion_aft.bench.parallel`); the results are the same.
    """
    from fusion_aft.errors import UserInputError

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UserInputError(f"jobs must be a whole number >= 1, got {jobs!r}")
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    validate_names(suite)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = CellStore(out)
    started = time.perf_counter()
    tasks = suite.resolved()
    if device:
        tasks = [t.model_copy(update={"device": device}) for t in tasks]
    n_total = sum(len(tune_cells(t)) + len(run_cells(t)) for t in tasks)
    records: list[dict[str, Any]] = []
    tuning: dict[str, Any] = {}
    task_table, teacher_table, student_table = [], [], []
    n_run = n_reused = 0
    extraction_log = load_extraction_log(out)

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, disable=not progress, transient=False) as bar:
        overall = bar.add_task("cells", total=n_total, info="")
        for task in tasks:
            bar.update(overall, info=f"{task.name}: preparing data and banks")
            ctx = prepare_task(task, resolve_device(task.device), progress=progress)
            merge_extraction(extraction_log, ctx.extraction)
            atomic_write_json(out / "extraction.json", extraction_log)

            def do(cell: Cell) -> dict[str, Any]:
                nonlocal n_run, n_reused
                done = store.get(cell)
                if done is not None:
                    n_reused += 1
                    bar.advance(overall)
                    return done
                bar.update(overall, info=cell.key)
                if cell.method == PROBE:
                    result = probe_cell(ctx, cell)
                else:
                    result = train_cell(ctx, cell, out / "runs" / cell.key)
                n_run += 1
                bar.advance(overall)
                return store.put(cell, result)

            def phase(cells: list[Cell]) -> list[dict[str, Any]]:
                nonlocal n_run
                todo = [c for c in cells if c.method != PROBE and store.get(c) is None]
                if jobs > 1 and len(todo) > 1:
                    workers = min(jobs, len(todo))
                    bar.update(overall, info=f"{task.name}: {len(todo)} cells in {workers} processes")

                    def advance(n: int) -> None:
                        bar.advance(overall, n)

                    n_run += run_parallel(task, todo, out, jobs, on_progress=advance)
                    ran = {c.key for c in todo}
                    return [store.get(c) if c.key in ran else do(c) for c in cells]
                return [do(c) for c in cells]

            tune_records = phase(tune_cells(task))
            records += tune_records
            tuning[task.name] = _choose(tune_records, task.beta_tie_break)
            chosen = {m: v["chosen"] for m, v in tuning[task.name].items()}
            train_records = phase(run_cells(task, chosen))
            records += train_records

            task_table.append(task_row(ctx))
            teacher_table += teacher_rows(ctx, extraction_log)
            cost = student_cost(ctx)
            trained = [
                r for r in train_records if r["method"] != PROBE and r.get("train_seconds") is not None
            ]
            cost["train_seconds"] = (
                sum(r["train_seconds"] for r in trained) / len(trained) if trained else None
            )
            student_table.append(cost)

    results = {
        "suite": suite.model_dump(mode="json"),
        # the tasks run when only some of the suite's were asked for (--task)
        "picked_tasks": suite.picked_tasks,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": environment(),
        "wall_seconds": time.perf_counter() - started,
        "jobs": jobs,
        "cells_run": n_run,
        "cells_reused": n_reused,
        "ablation_method": suite.defaults.ablation_method,
        "tasks": task_table,
        "teachers": teacher_table,
        "students": student_table,
        "tuning": tuning,
        "cells": records,
    }
    write_results(results, out)
    return results
