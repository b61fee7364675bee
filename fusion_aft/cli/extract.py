"""``fusion-aft extract``: cache teacher features for a dataset split (resumable; --dry-run plans)."""

from __future__ import annotations

from pathlib import Path

import typer

from fusion_aft.cli._console import console, emit_json
from fusion_aft.cli.options import DATASET_HELP, DATASET_OPTION_HELP, DEVICE_HELP, parse_options


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def extract(
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help=DATASET_HELP
    ),
    teachers: str = typer.Option(..., "--teachers", "-t", help="Comma-separated teacher refs."),
    split: str = typer.Option("train", "--split", help="Split to extract."),
    dataset_option: list[str] = typer.Option(None, "--dataset-option", help=DATASET_OPTION_HELP),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Bank root (default: FUSION_AFT_CACHE)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Rows per forward pass."),
    device: str = typer.Option("auto", "--device", help="Where the teachers run: " + DEVICE_HELP + "."),
    dtype: str = typer.Option("fp16", "--dtype", help="Stored dtype: fp16 or fp32."),
    workers: int | None = typer.Option(None, "--workers", min=0, help="DataLoader workers (default: auto)."),
    lock_timeout: float | None = typer.Option(
        None, "--lock-timeout", help="Seconds to wait for another writer of the same bank (default: wait)."
    ),
    chunk_rows: int | None = typer.Option(
        None, "--chunk-rows", min=1, help="Rows per resumable chunk (a multiple of --batch-size)."
    ),
    shared_fs: bool | None = typer.Option(
        None,
        "--shared-fs/--no-shared-fs",
        help="Under torchrun: all processes write one bank on a shared filesystem, or write shards "
        "merged over the process group onto each node's disk (default: detected).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan (rows, width, bytes, time); write nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
) -> None:
    """Extract teacher features for one split into the bank cache (resumes an interrupted run)."""
    import fusion_aft
    from fusion_aft.bank import plan
    from fusion_aft.training.run import resolve_device

    options = parse_options(dataset_option, "--dataset-option")
    device = str(resolve_device(device))
    refs = [t.strip() for t in teachers.split(",") if t.strip()]
    if dry_run:
        entries = plan(refs, dataset, split, cache_dir, batch_size, device, dtype, options)
        rows = [e.as_dict() for e in entries]
        if as_json:
            emit_json(rows)
            return
        from rich import box
        from rich.table import Table

        table = Table(title=f"plan: {dataset}/{split}", title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("teacher", "rows", "width", "dtype", "on disk", "done", "estimate"):
            table.add_column(col, no_wrap=col != "teacher", overflow="fold")
        for e in entries:
            est = "reuse" if e.estimate_s is None else f"{e.estimate_s:,.1f} s"
            table.add_row(
                e.teacher,
                f"{e.rows:,}",
                str(e.width),
                e.dtype,
                _human_bytes(e.bytes),
                f"{e.rows_done:,}",
                est,
            )
        console.print(table)
        total = sum(e.estimate_s or 0 for e in entries)
        console.print(f"total estimate {total:,.1f} s (teacher loading not included)", highlight=False)
        return
    bank = fusion_aft.extract(
        refs,
        dataset,
        split,
        cache_dir=cache_dir,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        num_workers=workers,
        progress=progress and not as_json,
        dataset_options=options,
        lock_timeout=lock_timeout,
        chunk_rows=chunk_rows,
        shared_fs=shared_fs,
    )
    from fusion_aft import distributed

    if not distributed.is_main():  # under torchrun, rank 0 reports
        return
    out = [
        {
            "teacher": b.ref,
            "folder": str(b.folder),
            "rows": b.rows,
            "width": b.width,
            "dtype": b.manifest.dtype,
        }
        for b in bank.banks
    ]
    if as_json:
        emit_json({"dim": bank.dim, "banks": out})
        return
    for row in out:
        console.print(
            f"{row['teacher']}: {row['rows']:,} × {row['width']} {row['dtype']} → {row['folder']}",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add the ``extract`` command to the root app."""
    app.command("extract")(extract)
