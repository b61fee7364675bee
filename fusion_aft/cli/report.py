"""``fusion-aft report``: which teacher an AFT run relied on (μ attribution)."""

from __future__ import annotations

from pathlib import Path

import typer

from fusion_aft.cli._console import console, emit_json, err_console


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        run: Path = typer.Argument(..., help="a run folder written by `fusion-aft train`"),
        top: int = typer.Option(5, "--top-k", "--top", "-k", min=0, help="top features listed per teacher"),
        json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
        plot: bool = typer.Option(True, "--plot/--no-plot", help="write mu_attribution.png into RUN"),
        drop_ratio: float = typer.Option(
            0.5, "--drop-ratio", min=0.0,
            help="suggest dropping a teacher whose μ share < this × its column share",
        ),
    ) -> None:
        """Per teacher: share of the learned feature weights μ, mean μ, entropy and top features."""
        from rich.table import Table

        from fusion_aft.report import attribution, drop_suggestions

        rep = attribution(run, top=top, plot=plot)
        rep["drop"] = drop_suggestions(rep, run, ratio=drop_ratio)
        if json_out:
            emit_json(rep)
            return
        table = Table(title=f"μ attribution: {run} ({rep['method']}, {rep['dim']} teacher features)")
        table.add_column("teacher", no_wrap=True)
        for col in ("width", "share", "init", "mean μ", "entropy"):
            table.add_column(col, justify="right")
        for t in rep["teachers"]:
            table.add_row(
                t["teacher"],
                str(t["width"]),
                f"{t['share']:.3f}",
                f"{t['initial_share']:.3f}",
                f"{t['mean']:.3f}",
                f"{t['entropy']:.3f}",
            )
        console.print(table)
        for t in rep["teachers"]:
            if t["top"]:
                tops = ", ".join(f"{f['feature']} ({f['mu']:.3f})" for f in t["top"])
                console.print(f"top features of {t['teacher']}: {tops}", highlight=False)
        _print_drop(rep["drop"])
        if rep.get("plot"):
            err_console.print(f"chart: {rep['plot']}", highlight=False)


def _print_drop(sug: dict) -> None:
    """One line per teacher the run could drop, and what that saves."""
    if not sug["drop"]:
        console.print(
            f"no teacher to drop: every μ share is at least {sug['ratio']:g} × its column share",
            highlight=False,
        )
        return
    for d in sug["drop"]:
        secs = "unknown" if d["extract_seconds"] is None else f"{d['extract_seconds']:.1f} s"
        console.print(
            f"could drop {d['teacher']}: μ share {100 * d['share']:.1f} % vs column share "
            f"{100 * d['initial_share']:.1f} % ({d['ratio']:.2f}×); saves extraction {secs}, "
            f"banks {d['bank_bytes'] / 2**20:.1f} MiB",
            highlight=False,
        )
    saves = sug["saves"]
    secs = "unknown" if saves["extract_seconds"] is None else f"{saves['extract_seconds']:.1f} s"
    console.print(
        f"dropping them saves {secs} of extraction and {saves['bank_bytes'] / 2**20:.1f} MiB of banks",
        highlight=False,
    )
