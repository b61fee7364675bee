"""Run a suite: banks first, then β tuning on a holdout, then every test cell; resumable.

Per task: the dataset is loaded, the label budget drawn (``data_seed``, the same rows for every
method and seed), each teacher's bank extracted once for the train and test splits (cached by
fingerprint, so reruns and later suites reuse them), then

1. ``tune`` cells: each tuned method × β trains on the labelled rows minus a holdout and is
   scored on that holdout (never the test split); the best holdout accuracy picks β (ties: the
   smaller β);
2. ``run`` cells: every (method, teacher subset, seed) trains on all labelled rows (plus the
   unlabelled rows for the regulariser when the suite says so; the same rows for every method)
   and is scored on the test split; the linear probe fits on the labelled rows' bank features.

Each finished cell is written atomically to ``OUT/cells/KEY.json``; a rerun skips it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import math
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_aft.bench.cells import Cell, run_cells, tune_cells
from fusion_aft.bench.parallel import run_parallel
from fusion_aft.bench.store import CellStore
from fusion_aft.bench.suite import PROBE, ResolvedTask, Suite
from fusion_aft.bench.validate import validate_names
from fusion_aft.fileio import atomic_write_json, atomic_write_text

__all__ = ["TaskContext", "environment", "render_summary", "run_suite"]

log = logging.getLogger(__name__)


@dataclass
class TaskContext:
    """Everything the cells of one task share (loaded once)."""

    task: ResolvedTask
    dataset: Any
    labelled: Any
    unlabelled: Any | None
    test: Any
    fit: Any
    holdout: Any
    device: Any
    banks: dict[str, Any] = field(default_factory=dict)  # split -> JointBank over all teachers
    extraction: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def bank(self, teachers: tuple[str, ...], split: str = "train") -> Any:
        """A joint bank over ``teachers`` (a view over cached per-teacher banks)."""
        import fusion_aft

        if tuple(teachers) == tuple(self.task.teachers):
            return self.banks[split]
        return fusion_aft.extract(
            list(teachers),
            self.dataset,
            split,
            batch_size=self.task.extract_batch_size,
            device=str(self.device),
            progress=False,
        )


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def environment() -> dict[str, Any]:
    """Machine and library versions recorded with the results."""
    import torch

    from fusion_aft.machine import cpu_model
    from fusion_aft.versions import library_versions

    versions = library_versions()
    versions.pop("python", None)  # recorded on its own below
    cpu = cpu_model()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "machine": f"{cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}"
        + (f", GPU {gpu}" if gpu else ", no GPU"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


# -- task set-up --------------------------------------------------------------------------------
def prepare_task(task: ResolvedTask, device: Any, progress: bool) -> TaskContext:
    """Load the data, draw the label budget and the holdout, extract (or reuse) every bank."""
    import fusion_aft
    from fusion_aft.data.splits import holdout, label_budget

    dataset = fusion_aft.datasets.load(task.dataset, **task.dataset_options)
    train, test = dataset.split("train"), dataset.split("test")
    if task.labels is not None and task.labels < len(train):
        labelled, unlabelled = label_budget(
            train, task.labels, seed=task.data_seed, n_unlabelled=task.unlabelled
        )
    else:
        labelled, unlabelled = train, None
    if unlabelled is not None and (len(unlabelled) == 0 or not task.use_unlabelled):
        unlabelled = None
    fit_part, hold = holdout(labelled, task.holdout, seed=task.data_seed)
    ctx = TaskContext(task, dataset, labelled, unlabelled, test, fit_part, hold, device)
    for split in ("train", "test"):
        t0 = time.perf_counter()
        bank = fusion_aft.extract(
            list(task.teachers),
            dataset,
            split,
            batch_size=task.extract_batch_size,
            device=str(device),
            progress=progress,
        )
        ctx.banks[split] = bank
        wall = time.perf_counter() - t0
        for ref, key in zip(task.teachers, _bank_keys(bank, tuple(task.teachers)), strict=True):
            manifest = bank.manifests[key]
            ctx.extraction.append(
                {
                    "task": task.name,
                    "teacher": ref,
                    "split": split,
                    "rows": int(manifest.shape[0]),
                    "seconds": _manifest_seconds(manifest, wall / len(task.teachers)),
                }
            )
    return ctx


# -- cells --------------------------------------------------------------------------------------
def _train_config(task: ResolvedTask, cell: Cell, n_labels: int) -> Any:
    from fusion_aft.training.config import TrainConfig

    return TrainConfig(
        dataset=task.dataset,
        dataset_options=task.dataset_options,
        n_labels=n_labels,
        use_unlabelled=task.use_unlabelled,
        student=task.student,
        student_options=task.student_options,
        teachers=list(cell.teachers),
        method=cell.method,
        method_options=task.method_options.get(cell.method, {}),
        beta=float(cell.beta or 0.0),
        seed=cell.seed,
        steps=task.steps,
        epochs=task.epochs if task.steps is None else None,
        batch_size=task.batch_size,
        lr=task.lr,
        objective_lr=task.objective_lr,
        weight_decay=task.weight_decay,
        device=task.device,
        checkpoint_every=0,
        log_every=max(1, (task.steps or 1000) // 4),
        progress=False,
    )


def _mu_share(objective: Any) -> dict[str, float] | None:
    fn = getattr(objective, "mu_by_teacher", None)
    if fn is None:
        return None
    return {teacher: float(v["share"]) for teacher, v in fn().items()}


def train_cell(ctx: TaskContext, cell: Cell, folder: Path) -> dict[str, Any]:
    """Train one cell with the engine and score it (holdout for ``tune``, test for ``run``)."""
    from fusion_aft.training.engine import FitSpec, evaluate, fit

    labelled = ctx.fit if cell.kind == "tune" else ctx.labelled
    scored = ctx.holdout if cell.kind == "tune" else ctx.test
    cfg = _train_config(ctx.task, cell, len(labelled))
    bank = ctx.bank(cell.teachers) if cell.teachers and cell.method != "none" else None
    spec = FitSpec(
        cfg=cfg,
        beta=float(cell.beta or 0.0),
        labelled=labelled,
        unlabelled=ctx.unlabelled,
        bank=bank,
        num_classes=ctx.num_classes,
        device=ctx.device,
        folder=folder,
        label=cell.key,
    )
    out = fit(spec)
    accuracy = evaluate(out.student, scored, cfg, ctx.device)
    train = [r for r in out.history if r.get("phase") == "train"]
    result = {
        "accuracy": accuracy,
        "scored_on": "holdout" if cell.kind == "tune" else "test",
        "n_scored": len(scored),
        "n_labelled": len(labelled),
        "n_unlabelled": len(ctx.unlabelled) if ctx.unlabelled is not None else 0,
        "steps": out.steps,
        "train_seconds": out.wall_time_s,
        "final_ce": train[-1].get("ce") if train else None,
        "final_reg": train[-1].get("reg") if train else None,
        "student_params": int(sum(p.numel() for p in out.student.parameters())),
        "mu_share": _mu_share(out.objective),
    }
    shutil.rmtree(folder / "checkpoint", ignore_errors=True)  # the weights are not needed afterwards
    return result


def probe_cell(ctx: TaskContext, cell: Cell) -> dict[str, Any]:
    """Linear probe on the bank columns of ``cell.teachers`` (fit: labelled rows, score: test)."""
    from fusion_aft.bench.probe import linear_probe, probe_features

    t0 = time.perf_counter()
    train_bank, test_bank = ctx.banks["train"], ctx.banks["test"]
    cols = _bank_keys(train_bank, cell.teachers)
    xtr = probe_features(train_bank, ctx.labelled.ids, cols)
    xte = probe_features(test_bank, ctx.test.ids, cols)
    out = linear_probe(xtr, ctx.labelled.labels, xte, ctx.test.labels, c=ctx.task.probe_c)
    return {
        **out,
        "scored_on": "test",
        "n_scored": len(ctx.test),
        "n_labelled": len(ctx.labelled),
        "train_seconds": time.perf_counter() - t0,
        "features": int(xtr.shape[1]),
    }


def _bank_keys(bank: Any, teachers: tuple[str, ...]) -> list[str]:
    """The names under which ``bank.slices`` knows each teacher reference."""
    keys = list(bank.slices)
    out = []
    for ref in teachers:
        if ref in bank.slices:
            out.append(ref)
            continue
        name = ref.split("?")[0]
        match = [k for k in keys if k == name or k.split("?")[0] == name]
        if len(match) != 1:
            raise KeyError(f"teacher '{ref}' not found in the bank (it has {keys})")
        out.append(match[0])
    return out


def student_cost(ctx: TaskContext) -> dict[str, Any]:
    """Parameters and CPU latency (batch 1, median of 20) of a fresh student of the task."""
    import torch

    import fusion_aft

    student = fusion_aft.students.create(ctx.task.student, ctx.num_classes, **ctx.task.student_options)
    student.eval()
    x = student.collate([student.prepare(ctx.test[0])])
    times = []
    with torch.no_grad():
        for _ in range(25):
            t0 = time.perf_counter()
            student(x)
            times.append(time.perf_counter() - t0)
    times = sorted(times[5:])
    return {
        "task": ctx.task.name,
        "student": ctx.task.student,
        "params": int(sum(p.numel() for p in student.parameters())),
        "latency_ms": 1000 * times[len(times) // 2],
    }


# -- the run ------------------------------------------------------------------------------------
def _choose(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: the β with the best holdout accuracy (ties: the smaller β)."""
    by_method: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        by_method.setdefault(r["method"], []).append((float(r["beta"]), float(r["accuracy"])))
    out = {}
    for method, scores in by_method.items():
        scores.sort()
        best = max(scores, key=lambda s: (s[1], -s[0]))
        out[method] = {"scores": scores, "chosen": best[0]}
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
    task_rows, teacher_rows, student_rows = [], [], []
    n_run = n_reused = 0
    extraction_log = _load_extraction_log(out)

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
            ctx = prepare_task(task, _device(task.device), progress=progress)
            _merge_extraction(extraction_log, ctx.extraction)
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
            tuning[task.name] = _choose(tune_records)
            chosen = {m: v["chosen"] for m, v in tuning[task.name].items()}
            train_records = phase(run_cells(task, chosen))
            records += train_records

            task_rows.append(_task_row(ctx))
            teacher_rows += _teacher_rows(ctx, extraction_log)
            cost = student_cost(ctx)
            trained = [
                r for r in train_records if r["method"] != PROBE and r.get("train_seconds") is not None
            ]
            cost["train_seconds"] = (
                sum(r["train_seconds"] for r in trained) / len(trained) if trained else None
            )
            student_rows.append(cost)

    results = {
        "suite": suite.model_dump(mode="json"),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": environment(),
        "wall_seconds": time.perf_counter() - started,
        "jobs": jobs,
        "cells_run": n_run,
        "cells_reused": n_reused,
        "ablation_method": suite.defaults.ablation_method,
        "tasks": task_rows,
        "teachers": teacher_rows,
        "students": student_rows,
        "tuning": tuning,
        "cells": records,
    }
    write_results(results, out)
    return results


def _load_extraction_log(out: Path) -> dict[str, dict[str, Any]]:
    path = out / "extraction.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf8"))
        except (OSError, json.JSONDecodeError):
            pass
    return {}


def _manifest_seconds(manifest: Any, fallback: float) -> float:
    """Extraction time recorded by a bank (last update minus creation; whole seconds)."""
    try:
        created = _dt.datetime.fromisoformat(manifest.created)
        updated = _dt.datetime.fromisoformat(manifest.updated)
    except (AttributeError, TypeError, ValueError):
        return fallback
    return max((updated - created).total_seconds(), fallback)


def _merge_extraction(log_: dict[str, dict[str, Any]], entries: list[dict[str, Any]]) -> None:
    """Keep the first measured extraction time of each bank (later calls hit the cache)."""
    for e in entries:
        key = f"{e['task']}|{e['teacher']}|{e['split']}"
        old = log_.get(key)
        if old is None or old.get("rows") != e["rows"] or e["seconds"] >= old["seconds"]:
            log_[key] = e


def _task_row(ctx: TaskContext) -> dict[str, Any]:
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


def _teacher_rows(ctx: TaskContext, extraction_log: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    import fusion_aft

    rows = []
    bank = ctx.banks["train"]
    keys = _bank_keys(bank, tuple(ctx.task.teachers))
    for ref, key in zip(ctx.task.teachers, keys, strict=True):
        parts = [extraction_log.get(f"{ctx.task.name}|{ref}|{s}") for s in ("train", "test")]
        secs = sum(p["seconds"] for p in parts if p) if all(parts) else None
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


def render_summary(results: dict[str, Any], console: Any) -> None:
    """Print the summary table (method × task accuracy and the STL-normalised error)."""
    from rich.table import Table

    from fusion_aft.bench.report import summary_table_rows

    header, rows = summary_table_rows(results)
    table = Table(title=f"{results['suite']['name']}: test accuracy % (mean ± s.e. over seeds)")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row, style="bold" if row[0] == "AFT" else None)
    console.print(table)
    wall = results.get("wall_seconds", math.nan)
    console.print(
        f"{results.get('cells_run', 0)} cells run, {results.get('cells_reused', 0)} reused, {wall:.0f} s",
        highlight=False,
    )
