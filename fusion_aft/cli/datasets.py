"""``fusion-aft datasets list|show``: the registered datasets and whether they load offline now."""

from __future__ import annotations

import typer

from fusion_aft.cli._console import console, emit_json
from fusion_aft.cli.options import DATASET_HELP, DATASET_OPTION_HELP, parse_options


def list_datasets(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    counts: bool = typer.Option(True, "--counts/--no-counts", help="Load cheap sources to count rows."),
) -> None:
    """List datasets: fields, classes, split sizes (where cheap) and whether they load offline now."""
    from fusion_aft import data

    rows = data.describe(counts=counts)
    if as_json:
        emit_json(rows)
        return
    from rich import box
    from rich.table import Table

    table = Table(title=f"{len(rows)} datasets", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("name", "fields", "classes", "splits", "offline"):
        table.add_column(col, no_wrap=col != "splits")
    for r in rows:
        classes = r["classes"]
        table.add_row(
            r["name"],
            "+".join(r["fields"]) or "?",
            "?" if classes is None else str(len(classes)),
            "" if r["splits"] is None else ", ".join(f"{k} {v}" for k, v in r["splits"].items()),
            "yes" if r["available"] else "no",
        )
    console.print(table)
    console.print(
        "your own files: --dataset PATH (a .csv, a .jsonl or a folder of class sub-folders), "
        "options with --dataset-option KEY=VALUE",
        highlight=False,
        soft_wrap=True,
    )


def show(
    name: str = typer.Argument(..., help=DATASET_HELP),
    dataset_option: list[str] = typer.Option(None, "--dataset-option", help=DATASET_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Load one dataset and show its classes, split sizes, fingerprints and a first record."""
    from fusion_aft import data
    from fusion_aft.data.fingerprint import dataset_fingerprint

    ds = data.load(name, **parse_options(dataset_option, "--dataset-option"))
    info = {
        "name": ds.name,
        "fields": list(ds.fields),
        "classes": ds.classes,
        "splits": {k: len(v) for k, v in ds.splits.items()},
        "fingerprints": {k: dataset_fingerprint(v) for k, v in ds.splits.items()},
        "description": ds.description,
    }
    first = ds.split(next(iter(ds.splits)))[0]
    info["example"] = {
        "id": first.id,
        "label": first.label,
        "fields": {k: repr(v)[:80] for k, v in first.fields.items()},
    }
    if as_json:
        emit_json(info)
        return
    for key, value in info.items():
        console.print(f"[bold]{key}[/]: {value}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``datasets`` command group to the root app."""
    group = typer.Typer(help="Browse the datasets.", no_args_is_help=True)
    group.command("list")(list_datasets)
    group.command("show")(show)
    app.add_typer(group, name="datasets")
