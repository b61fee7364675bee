"""``fusion_aft.train``: from a config to a finished run folder.

data → label budget → bank (extracted on demand) → [β sweep by cross-validation] → final run on all
labelled rows → test accuracy → run folder (config, metrics, student, objective, provenance,
result). Resuming continues the sweep and the final run from their last checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from fusion_aft.errors import UserInputError
from fusion_aft.fileio import atomic_write_json
from fusion_aft.training.config import ADDED_KEYS, OPERATIONAL_KEYS, TrainConfig, load_config
from fusion_aft.training.distributed import rank_setup
from fusion_aft.training.engine import Callback, FitSpec, evaluate, fit, total_steps_for
from fusion_aft.training.progress import MetricsLog, read_metrics
from fusion_aft.training.sweep import run_sweep

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"


@dataclass
class TrainResult:
    """What a finished run returns (and ``result.json`` records)."""

    test_accuracy: float
    history: list[dict[str, Any]]
    run_dir: Path
    beta: float
    sweep: dict[str, Any] | None = None
    steps: int = 0
    wall_time_s: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        data.pop("history")
        return data


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(
            f"device '{name}' was asked for but CUDA is not available here; use --device cpu"
        )
    return device


def default_run_dir(cfg: TrainConfig) -> Path:
    beta = "auto" if cfg.beta == "auto" else f"{cfg.beta:g}"
    from fusion_aft.data.locate import short_name

    return Path("runs") / f"{short_name(cfg.dataset)}-{cfg.student}-{cfg.method}-beta{beta}-seed{cfg.seed}"


def config_diff(saved: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """Keys (outside the operational ones) whose values differ, as ``key: old -> new``."""
    new = cfg.semantic_dict()
    old = {k: v for k, v in saved.items() if k not in OPERATIONAL_KEYS and k != "resolved"}
    old = {**ADDED_KEYS, **old}  # a run saved before a key existed ran with its old behaviour
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def _existing_result(run_dir: Path) -> TrainResult | None:
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf8"))
    sweep_path = run_dir / "sweep.json"
    return TrainResult(
        test_accuracy=float(data["test_accuracy"]),
        history=read_metrics(run_dir / "metrics.jsonl"),
        run_dir=run_dir,
        beta=float(data["beta"]),
        sweep=json.loads(sweep_path.read_text(encoding="utf8")) if sweep_path.is_file() else None,
        steps=int(data.get("steps", 0)),
        wall_time_s=float(data.get("wall_time_s", 0.0)),
        summary=data,
    )


def prepare_run_dir(run_dir: Path, cfg: TrainConfig) -> TrainResult | None:
    """Check the folder (refuse to overwrite a run; refuse to resume another config); returns the
    stored result when the run already finished and ``resume`` is set."""
    saved_path = run_dir / CONFIG_FILE
    if saved_path.is_file():
        if not cfg.resume:
            raise UserInputError(
                f"run folder {run_dir} already holds a run; pass --resume to continue it, "
                "or choose another --out"
            )
        saved = json.loads(saved_path.read_text(encoding="utf8"))
        diff = config_diff(saved, cfg)
        if diff:
            raise UserInputError(
                f"cannot resume {run_dir} with another config; differing keys: {'; '.join(diff)}. "
                "Resume with the saved config (config.json) or choose another --out"
            )
        return _existing_result(run_dir)
    if run_dir.exists() and any(p.name != ".lock" for p in run_dir.iterdir()):
        raise UserInputError(f"run folder {run_dir} exists and is not a fusion-aft run; choose another --out")
    if cfg.resume:
        log.warning("nothing to resume in %s; starting a new run", run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(saved_path, cfg.model_dump(mode="json"))
    return None


def train(
    config: TrainConfig | dict[str, Any] | str | Path | None = None,
    *,
    callbacks: Sequence[Callback] = (),
    **kwargs: Any,
) -> TrainResult:
    """Train a student with a transfer objective and evaluate it on the test split.

    Args:
        config: a :class:`TrainConfig`, a dict, or a TOML file; ``kwargs`` override its keys.
        callbacks: ``fn(event, info)`` called after every step (``"step"``) and when the β sweep
            ends (``"sweep_done"``).

    Returns:
        A :class:`TrainResult` (test accuracy, history, run folder, β, sweep).

    Example::

        result = fusion_aft.train(dataset="rotten_tomatoes", student="text_bow", method="aft",
                                  teachers=["all-minilm-l6-v2", "paraphrase-minilm-l3-v2"],
                                  beta="auto", n_labels=500, use_unlabelled=True, out="runs/rt")
        result.test_accuracy
    """
    import fusion_aft.objectives as objectives

    cfg = load_config(config, **kwargs)
    obj_cls = objectives.get(cfg.method)
    uses_teachers = bool(getattr(obj_cls, "uses_teachers", True))
    if uses_teachers and not cfg.teachers:
        raise UserInputError(
            f"method '{cfg.method}' transfers from teachers but none were given; pass --teachers a,b "
            "(or use --method none for plain fine-tuning)"
        )
    if cfg.augment and uses_teachers:
        raise UserInputError(
            "augment=true cannot be used with a cached teacher bank: the teacher features were computed "
            "on un-augmented inputs, so augmented student inputs would no longer match them; "
            "set augment=false (the paper uses no augmentation) or use --method none"
        )
    if getattr(obj_cls, "needs_pairs", False) and cfg.batch_size < 2:
        raise UserInputError(
            f"method '{cfg.method}' compares examples within a batch and needs batch_size >= 2, got "
            f"{cfg.batch_size}"
        )
    check_names(cfg, uses_teachers)
    cfg, dataset, student_choice = choose_student(cfg)
    device = resolve_device(cfg.device)
    run_dir = Path(cfg.out) if cfg.out is not None else default_run_dir(cfg)
    cfg, device, run_dir = rank_setup(cfg, device, run_dir)  # torchrun: rank 0 owns run_dir
    new_folder = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(
            f"cannot create the run folder {run_dir} ({exc.strerror or exc}); choose another --out"
        ) from None
    lock = FileLock(str(run_dir / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserInputError(
            f"another process is training into {run_dir}; wait for it or choose another --out"
        ) from None
    refused = False
    try:
        finished = prepare_run_dir(run_dir, cfg)
        if finished is not None:
            log.info("run %s had already finished; returning its result", run_dir)
            return finished
        return _train(cfg, uses_teachers, device, run_dir, list(callbacks), dataset, student_choice)
    except UserInputError:
        refused = True
        raise
    finally:
        lock.release()
        if refused and new_folder:
            discard_unstarted_run(run_dir)


def check_names(cfg: TrainConfig, uses_teachers: bool) -> None:
    """Look up the dataset, student and teacher names before any work (a typo costs nothing)."""
    import fusion_aft.data as datasets
    import fusion_aft.students as students

    datasets.get(cfg.dataset)
    if cfg.student is not None:
        students.get(cfg.student)
    if uses_teachers:
        from fusion_aft import teachers

        for ref in cfg.teachers:
            teachers.get(ref)


#: what a run folder holds before its first checkpoint or sweep record
_UNSTARTED = frozenset({".lock", CONFIG_FILE, "metrics.jsonl", "tensorboard"})


def discard_unstarted_run(run_dir: Path) -> None:
    """Remove a folder this call created for a run that was refused before it saved anything, so
    the same command, corrected, can run again in it."""
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= _UNSTARTED:
        shutil.rmtree(run_dir, ignore_errors=True)


def choose_student(cfg: TrainConfig) -> tuple[TrainConfig, Any, str]:
    """``(config with a student, the loaded dataset or None, how the student was chosen)``.

    Without a student the dataset is loaded to read its modality, and the default student of that
    modality (:data:`fusion_aft.students.DEFAULT_STUDENTS`) is used; the choice is logged and
    recorded in the run folder.
    """
    if cfg.student is not None:
        return cfg, None, "given"
    import fusion_aft.data as datasets
    from fusion_aft.students import default_student

    dataset = datasets.load(cfg.dataset, **cfg.dataset_options)
    name, modality = default_student(dataset.fields)
    choice = f"default for {modality} datasets"
    log.info("no student given: training '%s', the %s (fusion_aft.students.DEFAULT_STUDENTS)", name, choice)
    return cfg.model_copy(update={"student": name}), dataset, choice


def _train(
    cfg: TrainConfig,
    uses_teachers: bool,
    device: torch.device,
    run_dir: Path,
    callbacks: list[Callback],
    dataset: Any = None,
    student_choice: str = "given",
) -> TrainResult:
    import fusion_aft.data as datasets
    import fusion_aft.objectives
    from fusion_aft.data.splits import holdout, kfold, training_rows

    t0 = time.perf_counter()
    if dataset is None:
        dataset = datasets.load(cfg.dataset, **cfg.dataset_options)
    train_split = dataset.split("train")
    # a dataset's own unlabelled rows: never a class, never test
    rows = training_rows(train_split, dataset.splits.get("unlabelled"), cfg.n_labels, cfg.n_unlabelled,
                         cfg.seed)
    if rows.unlabelled is None and cfg.use_unlabelled:
        raise UserInputError(
            f"use_unlabelled is set but dataset '{cfg.dataset}' has no unlabelled rows; give n_labels "
            "(the rest of the training rows become unlabelled), add rows with an empty label or an "
            "unlabelled/ folder, or drop use_unlabelled"
        )
    if cfg.use_unlabelled is False:
        rows = rows.without_unlabelled()
    elif rows.unlabelled is not None and not uses_teachers:
        log.info(
            "method '%s' uses no teachers: the unlabelled rows would add nothing; skipping them", cfg.method
        )
        rows = rows.without_unlabelled()
    elif rows.unlabelled is not None:
        log.info(
            "the regulariser also sees %d unlabelled rows (cross-entropy never does)", len(rows.unlabelled)
        )
    labelled, unlabelled = rows.labelled, rows.unlabelled
    bank = None
    if uses_teachers:
        # the dataset's own unlabelled rows need teacher features too: one bank over both splits
        bank = ensure_bank(cfg, dataset, rows.bank_rows(), device)
    _write_resolved(run_dir, cfg, device, labelled, unlabelled, bank, student_choice)
    spec = FitSpec(
        cfg=cfg,
        beta=0.0,
        labelled=labelled,
        unlabelled=unlabelled,
        bank=bank,
        num_classes=dataset.num_classes,
        device=device,
        folder=run_dir,
        resume=cfg.resume,
        callbacks=callbacks,
    )
    sweep = None
    if not uses_teachers:
        if cfg.beta == "auto":
            log.info("method '%s' has no regulariser: β has no effect, so no sweep is run", cfg.method)
        beta = 0.0
    elif cfg.beta == "auto":
        if cfg.beta_folds == 1:
            folds = [holdout(labelled, cfg.holdout_fraction, seed=cfg.seed)]
        else:
            folds = kfold(labelled, cfg.beta_folds, seed=cfg.seed)
        needs_pairs = bool(getattr(fusion_aft.objectives.get(cfg.method), "needs_pairs", False))
        final_steps = total_steps_for(cfg, len(labelled), needs_pairs, unlabelled is not None)
        candidate_steps = max(1, math.ceil(cfg.sweep_steps_fraction * final_steps))
        sweep = run_sweep(spec, cfg.beta_grid, folds, run_dir, cfg.resume, candidate_steps, cfg.beta_rule,
                          cfg.beta_patience, cfg.beta_metric, cfg.beta_zero_unless_better,
                          cfg.accuracy_guard_se, cfg.beta_tie_break)
        for cb in callbacks:
            cb("sweep_done", {"sweep": sweep})
        beta = float(sweep["best_beta"])
        if cfg.final_steps == "sweep" and candidate_steps != final_steps and beta != 0:
            # β was chosen for runs of candidate_steps; a longer final run is another regime, in
            # which the regulariser's effect can fade as the student fits the labelled rows
            log.info("final run: %d steps, the length β was chosen at (final_steps='given' trains %d)",
                     candidate_steps, final_steps)
            spec = replace(spec, cfg=cfg.model_copy(update={"steps": candidate_steps, "epochs": None}))
        if sweep["accuracy_vetoed"] is not None:
            check = sweep["accuracy_check"]
            log.warning(
                "the β sweep chose β = %g, but its holdout accuracy is %.2f ± %.2f points (paired over "
                "folds) below the student alone's (beta_accuracy_guard allows %g standard errors): the "
                "final run trains the student alone for the given steps (%s)",
                sweep["accuracy_vetoed"], -100 * check["mean"], 100 * check["stderr"],
                cfg.accuracy_guard_se, run_dir / "sweep.png",
            )
        elif beta == 0:
            log.warning(
                "the β sweep chose β = 0: on held-out labelled rows the regulariser did not beat the "
                "student alone by more than one standard error, so the final run trains the student "
                "alone for the given steps (%s)", run_dir / "sweep.png"
            )
    else:
        beta = float(cfg.beta)
    out = fit(replace(spec, beta=beta, label=f"train β={beta:g}" if uses_teachers else "train"))
    test_split = dataset.split("test")
    test_acc = evaluate(out.student, test_split, cfg, device)
    MetricsLog(run_dir / "metrics.jsonl", fresh=False).write(
        {"phase": "test", "step": out.steps, "accuracy": test_acc, "n": len(test_split)}
    )
    wall = time.perf_counter() - t0
    summary = {
        "test_accuracy": test_acc,
        "beta": beta,
        "beta_auto": cfg.beta == "auto",
        "steps": out.steps,
        "wall_time_s": round(wall, 3),
        "final_run_wall_time_s": round(out.wall_time_s, 3),
        "resumed_from_step": out.resumed_from,
        "dataset": cfg.dataset,
        "student": cfg.student,
        "student_choice": student_choice,
        "method": cfg.method,
        "teachers": list(cfg.teachers) if uses_teachers else [],
        "seed": cfg.seed,
        "n_labelled": len(labelled),
        "n_unlabelled": len(unlabelled) if unlabelled is not None else 0,
        "n_test": len(test_split),
        "device": str(device),
        "student_params": sum(p.numel() for p in out.student.parameters()),
    }
    if sweep is not None:
        summary["best_holdout_accuracy"] = sweep["best_holdout_accuracy"]
        summary["best_holdout_cross_entropy"] = sweep["best_cross_entropy"]
        summary["sweep_wall_time_s"] = sweep["sweep_wall_time_s"]
        summary["beta_accuracy_vetoed"] = sweep["accuracy_vetoed"]
        probe = sweep.get("teacher_probe") or {}
        summary["teacher_probe_accuracy"] = probe.get("accuracy")
        summary["teacher_probe_vs_student_alone"] = probe.get("vs_student_alone")
    save_artefacts(run_dir, cfg, out, dataset, summary)
    from fusion_aft.training.provenance import provenance

    atomic_write_json(
        run_dir / "provenance.json",
        provenance(list(cfg.teachers) if uses_teachers else [], dataset, train_split, bank, device),
    )
    atomic_write_json(run_dir / RESULT_FILE, summary)
    return TrainResult(
        test_accuracy=test_acc,
        history=read_metrics(run_dir / "metrics.jsonl"),
        run_dir=run_dir,
        beta=beta,
        sweep=sweep,
        steps=out.steps,
        wall_time_s=wall,
        summary=summary,
    )


def _write_resolved(
    run_dir: Path,
    cfg: TrainConfig,
    device: torch.device,
    labelled: Any,
    unlabelled: Any,
    bank: Any,
    student_choice: str = "given",
) -> None:
    """Add what the config left open (device, steps, row counts, widths) to ``config.json``."""
    import fusion_aft.objectives as objectives
    from fusion_aft.training.engine import total_steps_for

    needs_pairs = bool(getattr(objectives.get(cfg.method), "needs_pairs", False))
    n_unl = len(unlabelled) if unlabelled is not None else 0
    data = cfg.model_dump(mode="json")
    data["resolved"] = {
        "device": str(device),
        "student": {"name": cfg.student, "choice": student_choice},
        "steps": total_steps_for(cfg, len(labelled), needs_pairs, n_unl > 0),
        "n_labelled": len(labelled),
        "n_unlabelled": n_unl,
        "teacher_dims": dict(bank.dims) if bank is not None else {},
        "amp": bool(cfg.amp and device.type == "cuda"),
    }
    if cfg.beta == "auto":
        data["resolved"]["beta_grid"] = list(cfg.beta_grid)
        data["resolved"]["beta_folds"] = cfg.beta_folds
    atomic_write_json(run_dir / CONFIG_FILE, data)


def ensure_bank(cfg: TrainConfig, dataset: Any, rows: Any, device: torch.device) -> Any:
    """The joint bank of the teachers over ``rows`` (the split name ``"train"``, or the training
    split joined with the dataset's own unlabelled rows), extracted if missing."""
    import fusion_aft

    return fusion_aft.extract(
        list(cfg.teachers),
        dataset,
        rows,
        cache_dir=cfg.cache_dir,
        batch_size=cfg.extract_batch_size,
        device=str(device),
        progress=cfg.progress,
    )


def save_artefacts(run_dir: Path, cfg: TrainConfig, out: Any, dataset: Any, summary: dict[str, Any]) -> None:
    """The exported student and the objective's state + description."""
    from safetensors.torch import save_model

    from fusion_aft.students import save_student

    student = out.student.to("cpu")
    objective = out.objective.to("cpu")
    save_student(
        student,
        run_dir / "student",
        meta={
            "classes": list(dataset.classes),
            "dataset": cfg.dataset,
            "method": cfg.method,
            "teachers": summary["teachers"],
            "beta": summary["beta"],
            "test_accuracy": summary["test_accuracy"],
        },
    )
    tmp = run_dir / ".objective.safetensors.tmp"
    save_model(objective, str(tmp))
    tmp.replace(run_dir / "objective.safetensors")
    if hasattr(objective, "config"):
        description = dict(objective.config())
    else:
        description = {
            "name": cfg.method,
            "student_dim": int(student.feature_dim),
            "options": cfg.method_options,
        }
    description.setdefault("teacher_dims", dict(getattr(objective, "teacher_dims", {}) or {}))
    description.setdefault("student_dim", int(student.feature_dim))
    atomic_write_json(run_dir / "objective.json", description)
