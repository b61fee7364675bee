"""``fusion-aft bank list|verify``: inspect the feature-bank cache and check banks' integrity."""

from __future__ import annotations

from pathlib import Path

import typer

from fusion_aft.cli._console import console, emit_json


def list_banks(
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Bank root (default: FUSION_AFT_CACHE)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List the banks in the cache: dataset, split, teacher, rows done, dtype, size on disk."""
    from fusion_aft.bank import find_banks

    rows = []
    for folder, manifest, problem in find_banks(cache_dir):
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        if manifest is None:
            rows.append({"folder": str(folder), "ok": False, "problem": problem, "bytes": size})
            continue
        rows.append(
            {
                "folder": str(folder),
                "ok": True,
                "dataset": manifest.dataset.name,
                "split": manifest.dataset.split,
                "teacher": manifest.teacher.ref,
                "rows": manifest.shape[0],
                "rows_done": manifest.rows_done,
                "width": manifest.shape[1],
                "dtype": manifest.dtype,
                "complete": manifest.complete,
                "bytes": size,
                "updated": manifest.updated,
            }
        )
    if as_json:
        emit_json(rows)
        return
    from rich import box
    from rich.table import Table

    table = Table(title=f"{len(rows)} banks", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("dataset/split", "teacher", "rows", "width", "dtype", "state", "MiB"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        if not r["ok"]:
            table.add_row(r["folder"], "", "", "", "", "bad manifest", f"{r['bytes'] / 2**20:.1f}")
            continue
        state = "complete" if r["complete"] else f"{r['rows_done']:,} done"
        table.add_row(
            f"{r['dataset']}/{r['split']}",
            r["teacher"],
            f"{r['rows']:,}",
            str(r["width"]),
            r["dtype"],
            state,
            f"{r['bytes'] / 2**20:.1f}",
        )
    console.print(table)


def verify(
    folder: Path = typer.Argument(..., help="A bank folder, or a cache root to check every bank in it."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Check banks fully (manifest, shapes, sizes, id files, every chunk checksum); exit 1 on problems."""
    from fusion_aft.bank import find_banks, verify_bank
    from fusion_aft.errors import UserInputError

    if not folder.exists():
        raise UserInputError(f"{folder} does not exist; pass a bank folder or a cache root")
    if (folder / "manifest.json").exists():
        folders = [folder]
    else:
        folders = [f for f, _, _ in find_banks(folder)]
        if not folders:
            raise UserInputError(f"{folder} holds no feature bank (no */*/manifest.json below it)")
    reports = [verify_bank(f) for f in folders]
    if as_json:
        emit_json([{"folder": str(r.folder), "ok": r.ok, "problems": r.problems} for r in reports])
    else:
        for r in reports:
            if r.ok:
                console.print(f"ok  {r.folder} ({r.rows:,} rows)", highlight=False, soft_wrap=True)
            else:
                console.print(f"BAD {r.folder}: " + "; ".join(r.problems), highlight=False, soft_wrap=True)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``bank`` command group to the root app."""
    group = typer.Typer(help="Inspect and check cached feature banks.", no_args_is_help=True)
    group.command("list")(list_banks)
    group.command("verify")(verify)
    app.add_typer(group, name="bank")
