"""``fusion-aft demo``: the main job end to end on one real offline task, in a few minutes."""

from __future__ import annotations

from pathlib import Path

import typer

from fusion_aft.cli._console import console, emit_json, err_console


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="folder for the demo's runs"),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]"),
        cache_dir: Path | None = typer.Option(None, "--cache-dir", help="where teacher banks are cached"),
        json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    ) -> None:
        """Extract two teachers (image + caption), train STL and AFT, report μ, export, predict."""
        from rich.table import Table

        from fusion_aft.demo import run_demo

        result = run_demo(
            out=out,
            device=device,
            cache_dir=cache_dir,
            on_stage=lambda message: err_console.print(f"[bold]{message}[/]"),
        )
        if json_out:
            emit_json(result.to_dict())
            return
        scores = Table(title="test accuracy (emoji image → Unicode group, 300 labels, one seed)")
        scores.add_column("student trained with")
        scores.add_column("accuracy", justify="right")
        scores.add_row("cross-entropy alone (STL)", f"{100 * result.stl_accuracy:.1f} %")
        aft_row = f"AFT, β = {result.beta:g} (tuned by cross-validation)"
        scores.add_row(aft_row, f"{100 * result.aft_accuracy:.1f} %")
        console.print(scores)
        mu = Table(title="μ attribution: how much of the learned feature weight each teacher holds")
        for col in ("teacher", "width", "μ share", "share of columns", "mean μ"):
            mu.add_column(col, justify="left" if col == "teacher" else "right")
        for t in result.attribution:
            shares = (f"{t['share']:.3f}", f"{t['initial_share']:.3f}", f"{t['mean']:.3f}")
            mu.add_row(t["teacher"], str(t["width"]), *shares)
        console.print(mu)
        ex = result.example
        console.print(
            f"exported student ({result.student_params:,} parameters, no teacher needed) labels "
            f"{ex['image']} as [bold]{ex['label']}[/] (p = {ex['probability']:.2f}; true: {ex['true_label']})"
        )
        console.print(
            f"results: {result.out}/  (μ chart: {result.attribution_plot}; student: {result.student_dir})"
        )
        console.print("the full benchmark, every method and 3 seeds on three tasks: make bench")
