"""The suite's summary on the console (method × task accuracy, STL-normalised error)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["render_summary"]


def render_summary(results: dict[str, Any], console: Any) -> None:
    """Print the summary table (method × task accuracy and the STL-normalised error)."""
    from rich.table import Table

    from fusion_aft.bench.report import summary_table_rows

    header, rows = summary_table_rows(results)
    table = Table(title=f"{results['suite']['name']}: test accuracy % (mean ± s.e. over seeds)")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row, style="bold" if row[0] == "AFT" else None)
    console.print(table)
    wall = results.get("wall_seconds", math.nan)
    console.print(
        f"{results.get('cells_run', 0)} cells run, {results.get('cells_reused', 0)} reused, {wall:.0f} s",
        highlight=False,
    )
