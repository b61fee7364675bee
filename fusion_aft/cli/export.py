"""``fusion-aft export`` (copy a run's student with a model card) and ``fusion-aft predict``."""

from __future__ import annotations

from pathlib import Path

import typer

from fusion_aft.cli._console import console, emit_json


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def _count(n: object) -> str:
    return f"{int(n):,}" if isinstance(n, (int, float)) else "?"


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        run: Path = typer.Argument(
            ..., help="a finished training run folder (the --out of `fusion-aft train`)"
        ),
        out: Path = typer.Option(..., "--out", "-o", help="folder to write the exported student into"),
        teacher_latency: bool = typer.Option(
            False, "--teacher-latency", help="also time each teacher that is installed here (slow)"
        ),
        json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    ) -> None:
        """Copy the student of RUN alone (weights, config, tokenizer) into --out with a model card.

        Prints the student's parameters, size on disk and CPU latency next to each teacher's.
        """
        from fusion_aft.students.export import export_run

        summary = export_run(run, out, teacher_latency=teacher_latency)
        if json_out:
            emit_json(summary)
            return
        from rich.table import Table

        s = summary["student"]
        acc = summary.get("test_accuracy")
        console.print(
            f"exported [bold]{s['name']}[/] student to {summary['out']}"
            + (f" (test accuracy {100 * float(acc):.2f}%)" if acc is not None else "")
        )
        table = Table("model", "parameters", "size on disk", "CPU latency / example")
        table.add_row(
            f"student {s['name']}", _count(s["params"]), _size(s["size_bytes"]), f"{s['latency_ms']:.2f} ms"
        )
        for t in summary["teachers"]:
            lat = (
                f"{t['latency_ms']:.2f} ms"
                if t.get("latency_ms") is not None
                else (t.get("latency_note") or "")
            )
            table.add_row(f"teacher {t.get('name')}", _count(t.get("params")), "", lat)
        console.print(table)

    @app.command("predict")
    def predict(
        folder: Path = typer.Argument(..., help="an exported student folder"),
        inputs: list[str] = typer.Argument(..., help="image file paths, or text strings, per the student"),
        top_k: int = typer.Option(3, "--top-k", "-k", help="how many classes to show per input"),
        json_out: bool = typer.Option(False, "--json", help="print the predictions as JSON"),
    ) -> None:
        """Run an exported student on INPUTS and print label names with probabilities."""
        from fusion_aft.students import load_student
        from fusion_aft.students.predict import predict as run_predict

        student = load_student(folder)
        rows = run_predict(student, inputs, top_k=top_k)
        if json_out:
            emit_json(rows)
            return
        from rich.table import Table

        table = Table("input", "label", "probability", "top classes")
        for r in rows:
            top = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top"][1:])
            table.add_row(r["input"], r["label"], f"{r['probability']:.3f}", top)
        console.print(table)
