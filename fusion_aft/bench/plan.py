"""``--dry-run``: what a suite would do, what it would store and cost, and what is missing here.

Nothing is trained or extracted. Row counts come from the task's ``rows`` hint or the label
budget (the dataset is not loaded, so a dataset's own unlabelled rows, e.g. Rotten Tomatoes' 1083
plot sentences, are not counted); widths and parameter counts from the teacher cards; the time
estimate is a rough FLOP count (2·params·tokens per row for extraction, 6·params·tokens per
training example) divided by an assumed sustained throughput, and is labelled as such.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from fusion_aft.bench.cells import run_cells, tune_cells
from fusion_aft.bench.suite import PROBE, ResolvedTask, Suite, parse_teacher_ref
from fusion_aft.bench.validate import check_names

__all__ = ["THROUGHPUT", "Plan", "make_plan"]

log = logging.getLogger(__name__)

#: assumed sustained FLOP/s (training and inference mixed precision on one GPU; 2 CPU cores fp32)
THROUGHPUT = {"gpu": 5e13, "cpu": 5e10}
#: tokens per example when a suite gives no hint: a 224 px ViT (196 patches + CLS) / 128 text tokens
DEFAULT_TOKENS = {"image": 197, "text": 128, "image+text": 325}
#: students that apply their weights once per token or patch (the others once per example)
SEQUENCE_STUDENTS = frozenset({"timm", "hf"})
BYTES = {"fp16": 2, "float16": 2, "bf16": 2, "fp32": 4, "float32": 4}


@dataclass
class TaskPlan:
    name: str
    dataset: str
    n_train_rows: int | None
    n_test_rows: int | None
    n_tune_cells: int
    n_run_cells: int
    n_train_runs: int
    steps_per_run: int | None
    banks: list[dict[str, Any]] = field(default_factory=list)
    student_params: int | None = None
    extract_flops: float = 0.0
    train_flops: float = 0.0


@dataclass
class Plan:
    suite: str
    tasks: list[TaskPlan]
    missing: list[str]
    device: str

    @property
    def n_cells(self) -> int:
        return sum(t.n_tune_cells + t.n_run_cells for t in self.tasks)

    @property
    def bank_bytes(self) -> int:
        return sum(b["bytes"] or 0 for t in self.tasks for b in t.banks)

    def seconds(self, device: str) -> float:
        flops = sum(t.extract_flops + t.train_flops for t in self.tasks)
        return flops / THROUGHPUT[device]

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "cells": self.n_cells,
            "bank_bytes": self.bank_bytes,
            "estimate_seconds": {d: self.seconds(d) for d in THROUGHPUT},
            "this_machine": self.device,
            "missing": self.missing,
            "tasks": [t.__dict__ for t in self.tasks],
        }


def _rows(task: ResolvedTask) -> tuple[int | None, int | None]:
    hint = task.rows or {}
    train = task.dataset_options.get("train_size") or hint.get("train")
    if task.labels is not None:
        unl = task.unlabelled if task.unlabelled is not None else (train - task.labels if train else None)
        train = task.labels + (unl or 0) if unl is not None else None
    test = task.dataset_options.get("test_size") or hint.get("test")
    return train, test


def _card(ref: str) -> Any | None:
    import fusion_aft

    name, _ = parse_teacher_ref(ref)
    try:
        return fusion_aft.teachers.get(ref)
    except Exception:  # an unknown name is reported by check_names
        try:
            return fusion_aft.teachers.get(name)
        except Exception:
            return None


def _student_params(task: ResolvedTask, num_classes: int = 10) -> tuple[int | None, int | None]:
    """(all parameters, parameters used in arithmetic per token): embedding tables are looked up,
    not multiplied, so they count in the first number only."""
    hint = (task.rows or {}).get("student_params")
    if hint:
        return int(hint), int(hint)
    try:
        from torch import nn

        import fusion_aft

        options = {k: v for k, v in task.student_options.items() if k != "pretrained"}
        student = fusion_aft.students.create(task.student, num_classes, **options)
        total = sum(p.numel() for p in student.parameters())
        tables = sum(
            p.numel()
            for m in student.modules()
            if isinstance(m, nn.Embedding | nn.EmbeddingBag)
            for p in m.parameters(recurse=False)
        )
        return int(total), int(total - tables)
    except Exception as exc:  # the plan must still print
        log.debug("could not build student %s to count parameters: %s", task.student, exc)
        return None, None


def _steps(task: ResolvedTask, n_labelled: int | None) -> int | None:
    if task.steps:
        return task.steps
    if task.epochs and n_labelled:
        return task.epochs * -(-n_labelled // task.batch_size)
    return None


def _dataset_missing(name: str) -> str | None:
    """Why dataset ``name`` cannot be used here (None when it is registered and loads, or is a
    path that exists: a .csv, a .jsonl or a folder of class sub-folders)."""
    from pathlib import Path

    import fusion_aft
    from fusion_aft.data.locate import looks_like_path

    if name not in fusion_aft.datasets.list() and looks_like_path(name):
        return None if Path(name).expanduser().exists() else f"dataset file or folder '{name}' does not exist"
    if name not in fusion_aft.datasets.list():
        return f"dataset '{name}' is not registered (no source; add one with fusion_aft.register_dataset)"
    ok, why = fusion_aft.datasets.availability(name)
    return None if ok else f"dataset '{name}': {why}"


def make_plan(suite: Suite) -> Plan:
    """Plan every task of ``suite`` and list what this machine lacks to run it."""
    import torch

    from fusion_aft.teachers import weights

    missing = [p.message() for p in check_names(suite) if p.kind != "dataset"]
    has_gpu = torch.cuda.is_available()
    if suite.requires.gpu and not has_gpu:
        missing.append(
            "no CUDA GPU on this machine (the suite's protocol needs one; on CPU it would take days)"
        )
    if suite.requires.internet and weights.hub_offline():
        missing.append(
            "the model hub is switched off here (HF_HUB_OFFLINE=1); the suite downloads weights/data"
        )
    plans = []
    seen_datasets: set[str] = set()
    for task in suite.resolved():
        if task.dataset not in seen_datasets:
            seen_datasets.add(task.dataset)
            why = _dataset_missing(task.dataset)
            if why:
                missing.append(why)
        n_train, n_test = _rows(task)
        tunes = tune_cells(task)
        runs = run_cells(task)
        trained = [c for c in runs if c.method != PROBE]
        steps = _steps(task, task.labels or n_train)
        tp = TaskPlan(
            task.name, task.dataset, n_train, n_test, len(tunes), len(runs), len(tunes) + len(trained), steps
        )
        tokens_student = (task.rows or {}).get("tokens")
        for ref in task.teachers:
            card = _card(ref)
            if card is None:
                tp.banks.append(
                    {"teacher": ref, "width": None, "rows": None, "bytes": None, "available": False}
                )
                continue
            ok, why = weights.check(card)
            if not ok:
                missing.append(f"teacher '{ref}': {why}")
            rows = (n_train or 0) + (n_test or 0) or None
            size = rows * card.width * BYTES["fp16"] if rows else None
            tp.banks.append(
                {
                    "teacher": ref,
                    "width": card.width,
                    "rows": rows,
                    "bytes": size,
                    "available": ok,
                    "parameters": card.parameters,
                }
            )
            tokens = DEFAULT_TOKENS.get(card.inputs, 128)
            tp.extract_flops += 2.0 * card.parameters * tokens * (rows or 0)
            if task.student in SEQUENCE_STUDENTS:
                tokens_student = tokens_student or tokens
        tp.student_params, compute_params = _student_params(task)
        if compute_params and steps:
            # each step also feeds as many unlabelled rows through the student as labelled ones
            rows_per_step = task.batch_size * (2 if task.use_unlabelled and task.labels else 1)
            # tuning cells train for tune_steps_fraction of a test cell's steps
            runs = len(trained) + len(tunes) * task.tune_steps_fraction
            tp.train_flops = 6.0 * compute_params * (tokens_student or 1) * rows_per_step * steps * runs
        plans.append(tp)
    return Plan(suite.name, plans, sorted(set(missing), key=missing.index), "cuda" if has_gpu else "cpu")


def _human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def _human_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def render_plan(plan: Plan, console: Any) -> None:
    """Print ``plan`` as rich tables."""
    from rich.table import Table

    table = Table(title=f"Plan of suite '{plan.suite}' ({plan.n_cells} cells)")
    for col in (
        "task",
        "dataset",
        "train rows",
        "test rows",
        "tune cells",
        "run cells",
        "steps/run",
        "student params",
    ):
        table.add_column(col, justify="right" if col not in ("task", "dataset") else "left")
    for t in plan.tasks:
        table.add_row(
            t.name,
            t.dataset,
            str(t.n_train_rows or "?"),
            str(t.n_test_rows or "?"),
            str(t.n_tune_cells),
            str(t.n_run_cells),
            str(t.steps_per_run or "?"),
            f"{t.student_params / 1e6:.1f} M" if t.student_params else "?",
        )
    console.print(table)
    banks = Table(title=f"Feature banks (fp16), {_human_bytes(plan.bank_bytes)} in all")
    for col in ("task", "teacher", "width", "rows", "storage", "weights here"):
        banks.add_column(col)
    for t in plan.tasks:
        for b in t.banks:
            banks.add_row(
                t.name,
                b["teacher"],
                str(b["width"] or "?"),
                str(b["rows"] or "?"),
                _human_bytes(b["bytes"]),
                "yes" if b["available"] else "no",
            )
    console.print(banks)
    console.print(
        "Rough time (FLOP count / assumed throughput): "
        f"{_human_seconds(plan.seconds('gpu'))} on one GPU (~{THROUGHPUT['gpu']:.0e} FLOP/s sustained), "
        f"{_human_seconds(plan.seconds('cpu'))} on 2 CPU cores (~{THROUGHPUT['cpu']:.0e} FLOP/s)."
    )
    if plan.missing:
        console.print(f"[bold red]Missing to run this suite here ({len(plan.missing)}):[/]")
        for m in plan.missing:
            console.print(f"  - {m}", markup=False, highlight=False)
    else:
        console.print("[green]Everything this suite needs is available here.[/]")
