"""One training run: student + objective, ``loss = CE(labelled rows) + β · R(all rows)``.

This is the loop of Qiu et al. 2024 (§3, Eq. 5; docs/design.md §1 steps 6–7): one Adam optimiser
whose groups are the student and the objective's own parameters (AFT's ``s``), both minimised
in the same backward pass and decayed by the same cosine schedule. Teacher features come from
the bank, computed once on un-augmented inputs. The loop syncs with the device only at logging
intervals; checkpoints make it resumable bit for bit on CPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fusion_aft.data.records import Split
from fusion_aft.errors import UserInputError
from fusion_aft.prefetch import Prefetcher
from fusion_aft.training.calibration import calibrated_cross_entropy
from fusion_aft.training.checkpoint import (
    latest,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from fusion_aft.training.config import TrainConfig, resolve_steps
from fusion_aft.training.data import Collate, RowDataset, eval_loader, train_loader
from fusion_aft.training.distributed import Parallel
from fusion_aft.training.progress import Board, MetricsLog, make_progress, read_metrics
from fusion_aft.training.sampler import Stream
from fusion_aft.training.schedule import make_scheduler

log = logging.getLogger(__name__)

Callback = Callable[[str, dict[str, Any]], None]


@dataclass
class FitSpec:
    """What one run trains on and where it writes (``folder`` gets metrics and checkpoints)."""

    cfg: TrainConfig
    beta: float
    labelled: Split
    unlabelled: Split | None
    bank: Any | None
    num_classes: int
    device: torch.device
    folder: Path
    resume: bool = False
    label: str = "train"
    callbacks: Sequence[Callback] = ()


@dataclass
class FitOutput:
    student: nn.Module
    objective: nn.Module
    steps: int
    wall_time_s: float
    resumed_from: int | None
    history: list[dict[str, Any]] = field(default_factory=list)


def build_models(cfg: TrainConfig, num_classes: int, teacher_dims: dict[str, int]) -> tuple[Any, Any]:
    """Seed everything, then create the student and the objective (in that order)."""
    import fusion_aft.objectives as objectives
    import fusion_aft.students as students

    seed_everything(cfg.seed)
    student = students.create(cfg.student, num_classes, **cfg.student_options)
    objective = objectives.create(
        cfg.method, student_dim=student.feature_dim, teacher_dims=teacher_dims, **cfg.method_options
    )
    return student, objective


def build_optimizer(cfg: TrainConfig, student: nn.Module, objective: Any) -> torch.optim.Adam:
    """Adam with the student group and the objective's group(s) (each with its own lr)."""
    groups: list[dict[str, Any]] = [
        {"params": [p for p in student.parameters() if p.requires_grad], "lr": cfg.lr, "name": "student"}
    ]
    for group in objective.param_groups(cfg.lr):
        group = dict(group)
        group.setdefault("name", "objective")
        # only groups with an lr of their own (AFT's μ); heads that follow the student keep its lr
        own_lr = group.pop("own_lr", objective.param_lr is not None)
        if cfg.objective_lr is not None and own_lr:
            group["lr"] = cfg.objective_lr
        groups.append(group)
    params = [p for g in groups for p in g["params"]]
    # the fused kernel is several times faster (also on CPU) and just as deterministic
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)


def streams_for(cfg: TrainConfig, n_labelled: int, n_unlabelled: int, needs_pairs: bool) -> list[Stream]:
    """The labelled stream and, for semi-supervised runs, the unlabelled one."""
    pairs_alone = needs_pairs and n_unlabelled == 0
    streams = [Stream(n_labelled, cfg.batch_size, 0, key=0, min_batch=2 if pairs_alone else 1)]
    if n_unlabelled:
        streams.append(Stream(n_unlabelled, cfg.unlabelled_batch_size or cfg.batch_size, n_labelled, key=1))
    return streams


def total_steps_for(cfg: TrainConfig, n_labelled: int, needs_pairs: bool, has_unlabelled: bool) -> int:
    return resolve_steps(cfg, n_labelled, min_batch=2 if needs_pairs and not has_unlabelled else 1)


def amp_context(cfg: TrainConfig, device: torch.device) -> tuple[Any, torch.amp.GradScaler]:
    """Autocast (bf16 where supported, else fp16 with a grad scaler) on CUDA when ``amp``."""
    if not (cfg.amp and device.type == "cuda"):
        return contextlib.nullcontext, torch.amp.GradScaler("cuda", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    return (lambda: torch.autocast(device_type="cuda", dtype=dtype)), scaler


def regulariser(objective: Any, features: torch.Tensor, teacher: torch.Tensor | None) -> tuple[Any, dict]:
    """R and its metrics, in float32; objectives that use no teachers contribute 0."""
    if not getattr(objective, "uses_teachers", True):
        return features.new_zeros(()), {}
    return objective(features.float(), teacher)


def student_alone(spec: FitSpec) -> FitSpec:
    """The run ``spec`` makes with the regulariser switched off: the student alone.

    At β = 0 the regulariser adds nothing to the gradient, so the run is trained as
    ``method = "none"``: no teacher rows are read, no unlabelled rows drawn (cross-entropy never
    sees them) and nothing is fitted for the objective. It is then the very run of the student
    alone with the same seed, weights and all, and a β sweep can weigh "off" against every β > 0.
    """
    cfg = spec.cfg.model_copy(update={"method": "none", "method_options": {}})
    return replace(spec, cfg=cfg, beta=0.0, unlabelled=None, bank=None)


def fit(spec: FitSpec) -> FitOutput:
    """Train one student with a fixed β; resume from ``spec.folder/checkpoint`` when asked.

    β = 0 trains the student alone (:func:`student_alone`)."""
    if spec.beta == 0 and spec.cfg.method != "none":
        spec = student_alone(spec)
    cfg, device = spec.cfg, spec.device
    teacher_dims = dict(spec.bank.dims) if spec.bank is not None else {}
    student, objective = build_models(cfg, spec.num_classes, teacher_dims)
    student.to(device)
    objective.to(device)
    n_lab = len(spec.labelled)
    n_unl = len(spec.unlabelled) if spec.unlabelled is not None else 0
    needs_pairs = bool(getattr(objective, "needs_pairs", False))
    if needs_pairs and n_lab + n_unl < 2:
        raise UserInputError(
            f"objective '{cfg.method}' compares rows in a batch and needs >= 2 training rows"
        )
    total = total_steps_for(cfg, n_lab, needs_pairs, n_unl > 0)
    streams = streams_for(cfg, n_lab, n_unl, needs_pairs)
    par = Parallel(cfg, device, needs_pairs)  # torchrun: DDP and sharded batches; else a no-op

    if getattr(objective, "needs_fit", False):
        _fit_objective(spec, student, objective)

    optimizer = build_optimizer(cfg, student, objective)
    scheduler = make_scheduler(optimizer, cfg.schedule, total)
    autocast, scaler = amp_context(cfg, device)

    ckpt_root = spec.folder / "checkpoint"
    start, resumed_from = 0, None
    found = latest(ckpt_root) if spec.resume else None
    metrics = MetricsLog(spec.folder / "metrics.jsonl", fresh=found is None)
    if found is not None:
        ck = load_checkpoint(found, student, objective, device)
        if int(ck.state.get("total_steps", total)) != total:
            raise UserInputError(
                f"checkpoint {found} was written for {ck.state['total_steps']} steps, this run has {total}; "
                "resume with the same data and steps, or start a new run folder"
            )
        optimizer.load_state_dict(ck.state["optimizer"])
        scheduler.load_state_dict(ck.state["scheduler"])
        if ck.state.get("scaler"):
            scaler.load_state_dict(ck.state["scaler"])
        set_rng_state(ck.state["rng"])
        start = resumed_from = ck.step
        metrics.truncate_to(start)
        log.info("resumed %s from step %d of %d (%s)", spec.label, start, total, found)
    elif ckpt_root.exists() and par.is_main:
        import shutil

        shutil.rmtree(ckpt_root)

    start, resumed_from = par.sync_resume(
        start, resumed_from, student, objective, optimizer, scheduler, scaler
    )
    sampler = par.sampler(streams, cfg.seed, total, start)
    par.wrap(student, objective)
    dataset = RowDataset(
        [spec.labelled] + ([spec.unlabelled] if n_unl else []),
        student,
        augment=cfg.augment,
        seed=cfg.seed,
        cache=cfg.cache_inputs and not cfg.augment,
    )
    loader = train_loader(
        dataset,
        sampler,
        Collate(student, spec.bank, n_lab),
        cfg.num_workers,
        cfg.seed,
        pin_memory=device.type == "cuda",
    )
    # worker processes already prepare batches ahead; without them a thread does
    batches = Prefetcher(loader, cfg.prefetch) if cfg.num_workers == 0 and cfg.prefetch else loader
    board = Board(spec.folder / "tensorboard" if cfg.tensorboard else None)
    t0 = time.perf_counter()
    running = torch.zeros(3, device=device)
    n_running = 0
    epoch_len = streams[0].per_epoch
    progress = make_progress(cfg.progress)
    try:
        with progress:
            task = progress.add_task(spec.label, total=total, completed=start, info="")
            for batch in batches:
                step = batch.step
                batch = batch.to(device, non_blocking=True)
                student.train()
                objective.train()
                with autocast():
                    logits, features = par.forward(student, batch.inputs)
                nl = batch.n_labelled
                ce = F.cross_entropy(logits[:nl].float(), batch.labels[:nl])
                reg, obj_metrics = par.regulariser(objective, features, batch.teacher)
                loss = ce + spec.beta * reg
                lrs = [g["lr"] for g in optimizer.param_groups]
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                running += torch.stack([loss.detach(), ce.detach(), reg.detach().float()])
                n_running += 1
                done = step + 1
                if step % cfg.log_every == 0 or done == total:
                    record = _record(
                        step,
                        epoch_len,
                        loss,
                        ce,
                        reg,
                        obj_metrics,
                        running / n_running,
                        optimizer,
                        lrs,
                        spec.beta,
                        time.perf_counter() - t0,
                    )
                    running.zero_()
                    n_running = 0
                    if not math.isfinite(record["loss"]):
                        raise UserInputError(
                            f"training diverged at step {step} ({spec.label}): the loss is {record['loss']}; "
                            "lower lr or beta"
                        )
                    metrics.write(record)
                    board.write(record, step)
                    progress.update(task, info=f"loss {record['loss']:.4f}")
                progress.update(task, advance=1)
                due = done == total or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0)
                if due and par.is_main:
                    state = {
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "rng": rng_state(),
                        "sampler": sampler.state(done),
                        "total_steps": total,
                        "beta": float(spec.beta),
                    }
                    save_checkpoint(ckpt_root, done, student, objective, state)
                for cb in spec.callbacks:
                    cb("step", {"step": step, "done": done, "total": total, "label": spec.label})
    finally:
        board.close()
    return FitOutput(
        student, objective, total, time.perf_counter() - t0, resumed_from, read_metrics(metrics.path)
    )


def _record(
    step: int,
    epoch_len: int,
    loss: torch.Tensor,
    ce: torch.Tensor,
    reg: torch.Tensor,
    obj_metrics: dict[str, Any],
    means: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    lrs: list[float],
    beta: float,
    elapsed: float,
) -> dict[str, Any]:
    """One ``metrics.jsonl`` line: this step's loss parts (the one host sync) plus interval means."""
    values = torch.stack([loss.detach(), ce.detach(), reg.detach().float(), *means]).tolist()
    record: dict[str, Any] = {
        "phase": "train",
        "step": step,
        "epoch": step // epoch_len,
        "loss": values[0],
        "ce": values[1],
        "reg": values[2],
        "beta": float(beta),
        "loss_mean": values[3],
        "ce_mean": values[4],
        "reg_mean": values[5],
        "elapsed_s": round(elapsed, 3),
    }
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        record[f"lr_{group.get('name', 'group')}"] = lr
    for k, v in obj_metrics.items():
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            record[f"obj_{k}"] = float(v)
        elif isinstance(v, int | float):
            record[f"obj_{k}"] = float(v)
    return record


@torch.no_grad()
def predict(student: nn.Module, split: Split, cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    """Predicted classes for every row of ``split`` (in order)."""
    student.eval()
    preds = []
    for batch in eval_loader(split, student, cfg.eval_batch_size, cfg.num_workers):
        batch = batch.to(device, non_blocking=True)
        logits, _ = student(batch.inputs)
        preds.append(logits.argmax(-1))
    return torch.cat(preds).cpu() if preds else torch.empty(0, dtype=torch.long)


def evaluate(student: nn.Module, split: Split, cfg: TrainConfig, device: torch.device) -> float:
    """Accuracy on ``split`` (its rows must be labelled)."""
    if len(split) == 0:
        raise UserInputError(f"cannot evaluate on the empty split '{split.name}'")
    labels = torch.tensor(split.labels, dtype=torch.long)
    if bool((labels < 0).any()):
        raise UserInputError(f"split '{split.name}' has unlabelled rows; it cannot be used for evaluation")
    preds = predict(student, split, cfg, device)
    return float((preds == labels).float().mean())


@torch.no_grad()
def holdout_scores(
    student: nn.Module, split: Split, cfg: TrainConfig, device: torch.device
) -> dict[str, float]:
    """``accuracy``, mean ``cross_entropy`` (nats per row), and the cross-entropy after dividing
    the logits by the one temperature that minimises it (``calibrated_cross_entropy``,
    ``temperature``; :mod:`fusion_aft.training.calibration`) on a labelled ``split``."""
    if len(split) == 0:
        raise UserInputError(f"cannot evaluate on the empty split '{split.name}'")
    labels = torch.tensor(split.labels, dtype=torch.long)
    if bool((labels < 0).any()):
        raise UserInputError(f"split '{split.name}' has unlabelled rows; it cannot be used for evaluation")
    student.eval()
    logits = []
    for batch in eval_loader(split, student, cfg.eval_batch_size, cfg.num_workers):
        logits.append(student(batch.to(device, non_blocking=True).inputs)[0].float().cpu())
    out = torch.cat(logits)
    ce = F.cross_entropy(out.double(), labels, reduction="mean")
    calibrated, temperature = calibrated_cross_entropy(out, labels)
    # accuracy as evaluate() computes it, so the two agree to the last digit
    return {
        "accuracy": float((out.argmax(-1) == labels).float().mean()),
        "cross_entropy": float(ce),
        "calibrated_cross_entropy": calibrated,
        "temperature": temperature,
    }


@torch.no_grad()
def _fit_objective(spec: FitSpec, student: nn.Module, objective: Any) -> None:
    """Run ``objective.fit`` on every training row (FT's autoencoders, B-Tuning's LogME)."""
    splits = [spec.labelled] + ([spec.unlabelled] if spec.unlabelled is not None else [])
    ids = [i for s in splits for i in s.ids]
    labels = torch.tensor(
        list(spec.labelled.labels) + [-1] * (len(ids) - len(spec.labelled)),
        dtype=torch.long,
        device=spec.device,
    )
    # read one teacher block at a time from the memory maps, never the whole bank onto the device
    teacher = spec.bank.lazy_rows(ids) if spec.bank is not None else None
    student.eval()
    feats = []
    for split in splits:
        for batch in eval_loader(split, student, spec.cfg.eval_batch_size, spec.cfg.num_workers):
            feats.append(student(batch.to(spec.device).inputs)[1].float())
    objective.fit(teacher, labels, torch.cat(feats))
