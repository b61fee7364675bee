"""One benchmark cell: a task's shared context, and training or probing one cell in it.

Used by the suite runner (:mod:`fusion_aft.bench.runner`) in its own process and by the worker
processes of :mod:`fusion_aft.bench.parallel`, so both run a cell the same way.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusion_aft.bench.cells import Cell
from fusion_aft.bench.suite import ResolvedTask

__all__ = [
    "TaskContext",
    "bank_keys",
    "extraction_entries",
    "prepare_task", "probe_cell",
    "student_cost",
    "train_cell",
]


@dataclass
class TaskContext:
    """Everything the cells of one task share (loaded once)."""

    task: ResolvedTask
    dataset: Any
    labelled: Any
    unlabelled: Any | None
    test: Any
    folds: list[tuple[Any, Any]]  # (fit, holdout) pairs of the labelled rows that tune β
    device: Any
    train_rows: Any = "train"  # the training bank's rows: "train", or joined with own unlabelled rows
    banks: dict[str, Any] = field(default_factory=dict)  # split -> JointBank over all teachers
    extraction: list[dict[str, Any]] = field(default_factory=list)

    @property
    def holdout(self) -> Any:
        """The first tuning fold's holdout."""
        return self.folds[0][1]

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def bank_split(self, split: str) -> Any:
        """What the bank of ``split`` covers (the training bank may hold more than the split)."""
        return self.train_rows if split == "train" else split

    def bank(self, teachers: tuple[str, ...], split: str = "train") -> Any:
        """A joint bank over ``teachers`` (a view over cached per-teacher banks)."""
        import fusion_aft

        if tuple(teachers) == tuple(self.task.teachers):
            return self.banks[split]
        return fusion_aft.extract(
            list(teachers),
            self.dataset,
            self.bank_split(split),
            batch_size=self.task.extract_batch_size,
            device=str(self.device),
            progress=False,
        )


# -- task set-up ---------------------------------------------------------------------------------
def prepare_task(task: ResolvedTask, device: Any, progress: bool) -> TaskContext:
    """Load the data, draw the label budget and the holdout, extract (or reuse) every bank.

    The labelled rows and the unlabelled pool follow the rule ``fusion-aft train`` follows
    (:func:`fusion_aft.data.splits.training_rows`): rows a label budget hides, rows with no label
    and the dataset's own unlabelled rows; the training bank covers all of them.
    """
    import fusion_aft
    from fusion_aft.data.splits import holdout, kfold, training_rows

    dataset = fusion_aft.datasets.load(task.dataset, **task.dataset_options)
    train, test = dataset.split("train"), dataset.split("test")
    budget = task.labels if task.labels is not None and task.labels < len(train) else None
    rows = training_rows(train, dataset.splits.get("unlabelled"), budget, task.unlabelled, task.data_seed)
    if not task.use_unlabelled:
        rows = rows.without_unlabelled()
    labelled, unlabelled = rows.labelled, rows.unlabelled
    if task.beta_folds == 1:
        folds = [holdout(labelled, task.holdout, seed=task.data_seed)]
    else:
        folds = kfold(labelled, task.beta_folds, seed=task.data_seed)
    ctx = TaskContext(task, dataset, labelled, unlabelled, test, folds, device, rows.bank_rows())
    for split in ("train", "test"):
        bank = fusion_aft.extract(
            list(task.teachers),
            dataset,
            ctx.bank_split(split),
            batch_size=task.extract_batch_size,
            device=str(device),
            progress=progress,
        )
        ctx.banks[split] = bank
        ctx.extraction += extraction_entries(task.name, split, bank, tuple(task.teachers))
    return ctx



def extraction_entries(task: str, split: str, bank: Any, teachers: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per teacher: rows and the seconds its bank's manifest says were spent extracting them.

    ``seconds`` is the sum over the runs that wrote the bank's chunks (a resumed run adds its
    own), never the manifest's age; ``None`` for a bank written before that was recorded.
    """
    out = []
    for ref, key in zip(teachers, bank_keys(bank, teachers), strict=True):
        manifest = bank.manifests[key]
        out.append(
            {
                "task": task,
                "teacher": ref,
                "split": split,
                "rows": int(manifest.shape[0]),
                "seconds": manifest.extract_seconds,
            }
        )
    return out


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
    import math

    import fusion_aft.objectives as objectives
    from fusion_aft.training.engine import FitSpec, fit, holdout_scores, total_steps_for

    tune = cell.kind == "tune"
    labelled, scored = ctx.folds[cell.fold or 0] if tune else (ctx.labelled, ctx.test)
    cfg = _train_config(ctx.task, cell, len(labelled))
    if tune:  # a fraction of the steps a test cell trains for on all labelled rows
        has_unl = ctx.unlabelled is not None
        run_cfg = _train_config(ctx.task, cell, len(ctx.labelled))
        pairs = cell.method != "none" and bool(getattr(objectives.get(cell.method), "needs_pairs", False))
        full = total_steps_for(run_cfg, len(ctx.labelled), pairs, has_unl)
        steps = max(1, math.ceil(ctx.task.tune_steps_fraction * full))
        cfg = cfg.model_copy(update={"steps": steps, "epochs": None})
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
    scores = holdout_scores(out.student, scored, cfg, ctx.device)
    train = [r for r in out.history if r.get("phase") == "train"]
    result = {
        "accuracy": scores["accuracy"],
        "cross_entropy": scores["cross_entropy"],
        "scored_on": "holdout" if tune else "test",
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
    from fusion_aft.bank.probe import linear_probe, probe_features

    t0 = time.perf_counter()
    train_bank, test_bank = ctx.banks["train"], ctx.banks["test"]
    cols = bank_keys(train_bank, cell.teachers)
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


def bank_keys(bank: Any, teachers: tuple[str, ...]) -> list[str]:
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
