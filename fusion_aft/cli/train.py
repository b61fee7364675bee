"""``fusion-aft train``: train a student with a transfer objective and report its test accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from fusion_aft.cli._console import console, emit_json, err_console
from fusion_aft.cli.options import DATASET_HELP, DATASET_OPTION_HELP, DEVICE_HELP, parse_options


def parse_grid(text: str | None) -> list[float] | None:
    from fusion_aft.errors import UserInputError

    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserInputError(f"--beta-grid expects numbers separated by commas, got {text!r}") from None


#: TrainConfig's defaults, quoted in --help (a test keeps them equal to the config's)
_DEFAULTS = {"beta": 1.0, "holdout_fraction": 0.1, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.0,
             "schedule": "cosine"}  # fmt: skip


def _how_beta_was_chosen(sweep: dict[str, Any] | None) -> str:
    if sweep is None:
        return ""
    if sweep.get("accuracy_vetoed") is not None:
        return (f" (cross-validation chose {sweep['accuracy_vetoed']:g}, set aside for a lower holdout "
                "accuracy than the student alone)")
    if sweep.get("tie_break") == "accuracy":
        return " (chosen by cross-validation: one-SE rule, then holdout accuracy)"
    return " (chosen by cross-validation, one-SE rule)"


def _probe_caption(probe: dict[str, Any] | None) -> str | None:
    """One line on the teachers' linear probe of the sweep's folds, against the student alone."""
    if probe is None:
        return None
    text = f"teachers' linear probe on the same folds: holdout acc {probe['accuracy']:.4f}"
    if probe.get("vs_student_alone") is not None:
        text += (f" ({100 * probe['vs_student_alone']:+.2f} ± {100 * probe['stderr_vs_student_alone']:.2f} "
                 "points vs β=0)")
        if probe["below_student_alone"]:
            text += ": the teachers know less of these labels than the student alone learns"
    return text


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        dataset: str = typer.Option(None, "--dataset", "-d", help=DATASET_HELP),
        student: str = typer.Option(
            None, "--student", "-s",
            help="student name (e.g. text_bow, small_cnn); default: the default student of the dataset's "
            "modality (fusion_aft.students.DEFAULT_STUDENTS)",
        ),
        teachers: str = typer.Option(None, "--teachers", "-t", help="comma-separated teacher names"),
        method: str = typer.Option(None, "--method", "-m", help="objective: aft, kd, rkd, ..., none (STL)"),
        beta: str = typer.Option(
            None, "--beta", "-b",
            help="regularisation strength β >= 0, or 'auto' (tuned by cross-validation); "
            f"default {_DEFAULTS['beta']:g}",
        ),
        beta_grid: str = typer.Option(
            None, "--beta-grid", help="β values tried by --beta auto, e.g. 0.1,1,10"
        ),
        holdout_fraction: float = typer.Option(
            None, "--holdout-fraction",
            help="share of the labelled rows held out to tune β under --beta auto with --beta-folds 1; "
            f"default {_DEFAULTS['holdout_fraction']}",
        ),
        beta_folds: int = typer.Option(
            None, "--beta-folds", help="folds of the labelled rows for --beta auto (3; 1 = one holdout)"
        ),
        beta_patience: int = typer.Option(
            None, "--beta-patience",
            help="--beta auto stops after this many β past the lowest holdout loss are ruled out "
            "(2; 0 = the whole grid)",
        ),
        beta_metric: str = typer.Option(
            None, "--beta-metric",
            help="holdout score --beta auto compares: cross_entropy, or calibrated_cross_entropy "
            "(after the best temperature per run)",
        ),
        beta_accuracy_guard: str = typer.Option(
            None, "--beta-accuracy-guard",
            help="--beta auto trains the student alone when the chosen β's mean holdout accuracy is "
            "below β = 0's by more than this many standard errors (default 0: by any amount; 'off' = "
            "no check)",
        ),
        beta_tie_break: str = typer.Option(
            None, "--beta-tie-break",
            help="--beta auto, among the β within one standard error of the lowest holdout loss: "
            "'accuracy' (default) takes the highest holdout accuracy, 'largest' the largest β",
        ),
        final_steps: str = typer.Option(
            None, "--final-steps",
            help="after --beta auto: 'sweep' (default) trains the final run for the candidates' steps, "
            "the length β was chosen at; 'given' for --steps / --epochs",
        ),
        seed: int = typer.Option(None, "--seed", help="random seed (also picks the labelled rows)"),
        out: Path = typer.Option(None, "--out", "-o", help="run folder (default runs/<dataset>-...)"),
        steps: int = typer.Option(None, "--steps", help="optimiser steps (default ~5000, whole epochs)"),
        epochs: int = typer.Option(None, "--epochs", help="epochs of the labelled rows instead of --steps"),
        n_labels: int = typer.Option(None, "--n-labels", help="labelled training rows to keep"),
        n_unlabelled: int = typer.Option(None, "--n-unlabelled", help="unlabelled rows (default: the rest)"),
        use_unlabelled: bool = typer.Option(
            None,
            "--use-unlabelled/--labelled-only",
            help="apply the objective to unlabelled rows too (default: whenever the data has any)",
        ),
        batch_size: int = typer.Option(
            None, "--batch-size", help=f"batch size; default {_DEFAULTS['batch_size']}"
        ),
        unlabelled_batch_size: int = typer.Option(
            None, "--unlabelled-batch-size",
            help="unlabelled rows per step with --use-unlabelled; default: as many as --batch-size",
        ),
        lr: float = typer.Option(None, "--lr", help=f"student learning rate; default {_DEFAULTS['lr']:g}"),
        weight_decay: float = typer.Option(
            None, "--weight-decay",
            help="weight decay (L2, in Adam) of the student and heads, never of AFT's μ; "
            f"default {_DEFAULTS['weight_decay']:g}",
        ),
        schedule: str = typer.Option(
            None, "--schedule",
            help=f"learning-rate schedule: cosine or constant; default {_DEFAULTS['schedule']}",
        ),
        objective_lr: float = typer.Option(
            None, "--objective-lr", help="lr of AFT's μ (default 1e-2); heads keep --lr"
        ),
        student_option: list[str] = typer.Option(None, "--student-option", help="student option KEY=VALUE"),
        method_option: list[str] = typer.Option(None, "--method-option", help="objective option KEY=VALUE"),
        dataset_option: list[str] = typer.Option(None, "--dataset-option", help=DATASET_OPTION_HELP),
        device: str = typer.Option(None, "--device", help=DEVICE_HELP + "; default auto"),
        amp: bool = typer.Option(None, "--amp/--no-amp", help="mixed precision on CUDA (default on)"),
        augment: bool = typer.Option(None, "--augment/--no-augment", help="augment images (STL only)"),
        global_kernel: bool = typer.Option(
            None,
            "--global-kernel/--local-kernel",
            help="under torchrun: AFT kernel over the global batch, or each process's (default)",
        ),
        checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="steps between checkpoints"),
        cache_dir: Path = typer.Option(None, "--cache-dir", help="feature bank folder"),
        num_workers: int = typer.Option(None, "--num-workers", help="DataLoader workers"),
        tensorboard: bool = typer.Option(
            None, "--tensorboard/--no-tensorboard", help="write TensorBoard logs"
        ),
        resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its checkpoint"),
        config: Path = typer.Option(None, "--config", help="a TOML config; flags override its keys"),
        json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
    ) -> None:
        """Train a student (CE + β·R), tune β on the labelled rows if asked, and evaluate on the test split.

        Example: fusion-aft train --dataset rotten_tomatoes --student text_bow
        --teachers all-minilm-l6-v2,paraphrase-minilm-l3-v2 --method aft --beta auto
        --n-labels 500 --use-unlabelled --out runs/rt-aft
        """
        from fusion_aft.training import load_config
        from fusion_aft.training import train as run_train

        overrides: dict[str, Any] = {
            "dataset": dataset,
            "student": student,
            "teachers": teachers,
            "method": method,
            "beta": beta,
            "beta_grid": parse_grid(beta_grid),
            "holdout_fraction": holdout_fraction,
            "unlabelled_batch_size": unlabelled_batch_size,
            "weight_decay": weight_decay,
            "schedule": schedule,
            "beta_folds": beta_folds,
            "beta_patience": beta_patience,
            "beta_metric": beta_metric,
            "final_steps": final_steps,
            "beta_accuracy_guard": beta_accuracy_guard,
            "beta_tie_break": beta_tie_break,
            "seed": seed,
            "out": out,
            "steps": steps,
            "epochs": epochs,
            "n_labels": n_labels,
            "n_unlabelled": n_unlabelled,
            "use_unlabelled": use_unlabelled,
            "batch_size": batch_size,
            "lr": lr,
            "objective_lr": objective_lr,
            "device": device,
            "amp": amp,
            "augment": augment,
            "global_kernel": global_kernel,
            "checkpoint_every": checkpoint_every,
            "cache_dir": cache_dir,
            "num_workers": num_workers,
            "tensorboard": tensorboard,
            "resume": resume or None,
            "progress": progress and not json_out,
        }
        for key, items, flag in (
            ("student_options", student_option, "--student-option"),
            ("method_options", method_option, "--method-option"),
            ("dataset_options", dataset_option, "--dataset-option"),
        ):
            if items:
                overrides[key] = parse_options(items, flag)
        cfg = load_config(config, **overrides)
        result = run_train(cfg)
        from fusion_aft import distributed

        if not distributed.is_main():  # under torchrun, rank 0 reports
            return
        if json_out:
            emit_json(
                {
                    "test_accuracy": result.test_accuracy,
                    "beta": result.beta,
                    "run_dir": str(result.run_dir),
                    "steps": result.steps,
                    "wall_time_s": result.wall_time_s,
                    "sweep": result.sweep["candidates"] if result.sweep else None,
                    "summary": result.summary,
                }
            )
            return
        _print_summary(result)

    def _print_summary(result: Any) -> None:
        from rich.table import Table

        table = Table(title="fusion-aft train", show_header=False)
        s = result.summary
        table.add_row("test accuracy", f"{result.test_accuracy:.4f} ({s.get('n_test', '?')} rows)")
        choice = s.get("student_choice")
        note = f" ({choice})" if choice not in (None, "given") else ""
        table.add_row("student", f"{s.get('student')}{note}")
        table.add_row("method", f"{s.get('method')}  teachers: {', '.join(s.get('teachers') or []) or '-'}")
        table.add_row("β", f"{result.beta:g}{_how_beta_was_chosen(result.sweep)}")
        table.add_row("rows", f"{s.get('n_labelled')} labelled, {s.get('n_unlabelled')} unlabelled")
        table.add_row("steps", str(result.steps))
        table.add_row("wall time", f"{result.wall_time_s:.1f} s")
        table.add_row("run folder", str(result.run_dir))
        console.print(table)
        if result.sweep:
            sw = result.sweep
            title = f"β sweep ({sw['folds']} folds, {sw['candidate_steps']} steps per candidate)"
            sweep = Table(title=title)
            sweep.add_column("β", justify="right")
            sweep.add_column("holdout CE (mean ± SE)", justify="right")
            sweep.add_column("holdout acc", justify="right")
            sweep.add_column("acc − β=0 (± SE)", justify="right")
            for c in sw["candidates"]:
                mark = " ←" if c["beta"] == result.beta else ""
                if c["beta"] == sw.get("accuracy_vetoed"):
                    mark = " ✗ accuracy"
                sweep.add_row(
                    f"{c['beta']:g}",
                    f"{c['mean_cross_entropy']:.4f} ± {c['stderr_cross_entropy']:.4f}{mark}",
                    f"{c['holdout_accuracy']:.4f}",
                    f"{100 * c['accuracy_vs_off']:+.2f} ± {100 * c['stderr_accuracy_vs_off']:.2f}"
                    if "accuracy_vs_off" in c else "",
                )
            for b in sw.get("skipped") or []:
                sweep.add_row(f"{b:g}", "not run (stopped early)", "", "")
            sweep.caption = _probe_caption(sw.get("teacher_probe"))
            console.print(sweep)
        err_console.print(f"student, metrics and provenance in {result.run_dir}", highlight=False)
