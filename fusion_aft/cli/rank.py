"""``fusion-aft teachers rank``: rank teachers on a task's labelled training rows and recommend a subset."""

from __future__ import annotations

from pathlib import Path

import typer

from fusion_aft.cli._console import console, emit_json, err_console
from fusion_aft.cli.options import DATASET_HELP, DATASET_OPTION_HELP, DEVICE_HELP


def rank(
    dataset: str = typer.Option(..., "--dataset", "-d", help=DATASET_HELP),
    teachers: str = typer.Option(..., "--teachers", "-t", help="Comma-separated teacher refs to rank."),
    dataset_option: list[str] = typer.Option(None, "--dataset-option", help=DATASET_OPTION_HELP),
    n_labels: int | None = typer.Option(
        None,
        "--n-labels",
        min=1,
        help="Labelled training rows to draw, as `train --n-labels` (default: all).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the label draw and the cross-validation folds."),
    folds: int = typer.Option(5, "--folds", min=2, help="Cross-validation folds of the probe."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Cross-validation repeats with new folds."),
    max_width: int | None = typer.Option(
        None, "--max-width", min=1, help="Most features the recommended subset may have in total."
    ),
    max_cost: float | None = typer.Option(
        None,
        "--max-cost",
        min=0.0,
        help="Most extraction seconds per 1000 rows the subset may cost in total.",
    ),
    score: str = typer.Option(
        "alignment",
        "--score",
        help="What orders the subsets and drives the selection: alignment (of the teachers' mean "
        "kernel with the labels, the kernel AFT transfers) or probe (CV accuracy of the "
        "concatenated features).",
    ),
    min_gain_se: float = typer.Option(
        -1.0,
        "--min-gain-se",
        help="Add a teacher when its gain in the score is above this many standard errors "
        "(-1: unless it hurts, for AFT; 1: only when it clearly helps).",
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the chart (PNG) here."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Bank root (default: FUSION_AFT_CACHE)."),
    device: str = typer.Option(
        "auto", "--device", help="Where missing banks are extracted: " + DEVICE_HELP + "."
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Rows per forward pass when extracting."),
    progress: bool = typer.Option(
        True, "--progress/--no-progress", help="Show extraction progress on stderr."
    ),
) -> None:
    """Kernel alignment, probe accuracy (CV), LogME, width, parameters and cost per teacher; CKA
    per pair; a recommended subset.

    Works on the labelled rows of the train split only (never the test split),
    from the feature banks; missing banks are extracted first (resumable, as
    `fusion-aft extract`).
    """
    import fusion_aft
    from fusion_aft.cli.options import parse_options
    from fusion_aft.training.run import resolve_device

    result = fusion_aft.rank_teachers(
        dataset,
        teachers,
        dataset_options=parse_options(dataset_option, "--dataset-option"),
        n_labels=n_labels,
        seed=seed,
        folds=folds,
        repeats=repeats,
        max_width=max_width,
        max_cost=max_cost,
        min_gain_se=min_gain_se,
        score=score,
        cache_dir=cache_dir,
        device=str(resolve_device(device)),
        batch_size=batch_size,
        progress=progress and not as_json,
    )
    png = result.plot(out) if out is not None else None
    if as_json:
        data = result.as_dict()
        data["plot"] = str(png) if png else None
        emit_json(data)
        return
    console.print(result.table(), highlight=False, soft_wrap=True)
    names = result.cka_teachers
    if len(names) > 1:
        console.print("\nlinear CKA (1 = the same information):", highlight=False)
        for i, a in enumerate(names):
            for j in range(i + 1, len(names)):
                console.print(f"  {a} ~ {names[j]}: {result.cka[i][j]:.2f}", highlight=False)
    secs = result.seconds
    err_console.print(
        f"ranked in {secs.get('total', 0.0):.1f} s (banks {secs.get('banks', 0.0):.1f} s, "
        f"scores {secs['scores']:.1f} s)" + (f"; chart: {png}" if png else ""),
        highlight=False,
    )
