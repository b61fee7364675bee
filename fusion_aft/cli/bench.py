"""``fusion-aft bench``: run a benchmark suite, or print its plan with ``--dry-run``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer

from fusion_aft.cli._console import console, emit_json, err_console


def _refuse_for_perf(*, jobs: int, dry_run: bool, device: str | None, task: list[str] | None) -> None:
    """``bench perf`` measures one process on the CPU: flags it cannot honour are an error, not ignored."""
    from fusion_aft.errors import UserInputError

    given = [
        flag
        for flag, used in (
            ("--jobs", jobs != 1),
            ("--dry-run", dry_run),
            ("--device", device is not None),
            ("--task", bool(task)),
        )
        if used
    ]
    if given:
        raise UserInputError(
            f"`fusion-aft bench perf` does not take {', '.join(given)}: it times one process on the CPU "
            "and has no plan to print; drop the flag (its own options are --quick and --section)"
        )


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        suite: str = typer.Argument(
            "offline",
            help="suite name (benchmarks/suites/NAME.toml), a path to a suite .toml, or 'perf'",
        ),
        out: Path = typer.Option(None, "--out", "-o", help="output folder (default runs/SUITE)"),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="print the plan and what is missing; run nothing"
        ),
        json_out: bool = typer.Option(False, "--json", help="print the summary (or plan) as JSON"),
        list_suites: bool = typer.Option(False, "--list", help="list the shipped suites and exit"),
        device: str = typer.Option(
            None, "--device",
            help="override the suite's device: auto, cpu, cuda or cuda:N (default: the suite's, auto unless "
            "it says otherwise)",
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
        jobs: int = typer.Option(
            1, "--jobs", "-j",
            help="train this many cells at once, each in its own process (about one per CPU core)",
        ),
        task: list[str] = typer.Option(
            None, "--task", help="run just this task of the suite (repeatable; default: every task)"
        ),
        quick: bool = typer.Option(False, "--quick", help="perf only: shrink every size for a smoke run"),
        section: list[str] = typer.Option(
            None,
            "--section",
            help="perf only: run just this section (repeatable): overhead, regulariser, extraction, "
            "memory, scaling",
        ),
    ) -> None:
        """Run every (task, method, teacher subset, seed) cell of SUITE; finished cells are reused.

        Writes results.json, results.csv, report.md and PNG figures into --out and prints the
        summary table. Interrupt it at any time: rerunning skips every finished cell.
        """
        from fusion_aft.bench.suite import list_suites as shipped

        if list_suites:
            names = shipped()
            emit_json(names) if json_out else console.print("\n".join(names))
            return
        if suite == "perf" and not Path(suite).exists():
            if importlib.util.find_spec("fusion_aft.bench.perf") is None:
                from fusion_aft.errors import UserInputError

                raise UserInputError("the performance suite is not part of this installation")
            _refuse_for_perf(jobs=jobs, dry_run=dry_run, device=device, task=task)
            from fusion_aft.bench import perf

            report = perf.main(
                out or Path("benchmarks/results"),
                quick=quick,
                progress=progress and not json_out,
                sections=section or None,
            )
            if json_out:
                emit_json(report)
            return
        if quick or section:
            from fusion_aft.errors import UserInputError

            raise UserInputError("--quick and --section apply only to `fusion-aft bench perf`")

        from fusion_aft.bench.suite import load_suite

        spec = load_suite(suite)
        if task:
            spec = spec.only(task)
        if dry_run:
            from fusion_aft.bench.plan import make_plan, render_plan

            plan = make_plan(spec)
            emit_json(plan.as_dict()) if json_out else render_plan(plan, console)
            return

        from fusion_aft.bench.runner import run_suite

        folder = out or Path("runs") / spec.name
        results = run_suite(spec, folder, device=device, progress=progress and not json_out, jobs=jobs)
        if json_out:
            from fusion_aft.bench.report import summary_table_rows

            header, rows = summary_table_rows(results)
            emit_json({"out": str(folder), "summary": [dict(zip(header, r, strict=True)) for r in rows]})
            return
        from fusion_aft.bench.runner import render_summary

        render_summary(results, console)
        err_console.print(f"results, report.md and figures in {folder}", highlight=False)
