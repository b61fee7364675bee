"""``fusion-aft datasets list|show``: the registered datasets and whether they load offline now."""

from __future__ import annotations

import typer

from fusion_aft.cli._console import console, emit_json


def parse_options(items: list[str] | None) -> dict[str, object]:
    """``["train_size=300", "path=a.csv"]`` → ``{"train_size": 300, "path": "a.csv"}``."""
    from fusion_aft.errors import UserInputError

    out: dict[str, object] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UserInputError(f"dataset option '{item}' is not key=value (e.g. --option train_size=500)")
        out[key.strip()] = _value(value.strip())
    return out


def _value(text: str) -> object:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


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


def show(
    name: str = typer.Argument(..., help="Dataset name."),
    option: list[str] = typer.Option(None, "--option", "-o", help="Source option key=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Load one dataset and show its classes, split sizes, fingerprints and a first record."""
    from fusion_aft import data
    from fusion_aft.data.fingerprint import dataset_fingerprint

    ds = data.load(name, **parse_options(option))
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
