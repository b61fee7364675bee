"""The entry point of ``fusion-aft bench perf``: runs the sections, writes perf.json and perf.png."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fusion_aft.bench.perf.extraction import run_extraction
from fusion_aft.bench.perf.memory import run_memory
from fusion_aft.bench.perf.overhead import run_overhead
from fusion_aft.bench.perf.plot import plot
from fusion_aft.bench.perf.regulariser import run_regulariser
from fusion_aft.bench.perf.scaling import run_scaling
from fusion_aft.bench.perf.sizes import (
    SCHEMA,
    SECTIONS,
    full_sizes,
    quick_sizes,
)
from fusion_aft.fileio import atomic_write_text
from fusion_aft.machine import load_average, machine_info
from fusion_aft.versions import library_versions

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    if not enabled:
        yield lambda text: log.info("%s", text)
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]perf"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} sections"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("", total=total)
        state = {"section": None}

        def tick(text: str) -> None:
            section = text.split(":", 1)[0]
            if state["section"] is not None and section != state["section"]:
                bar.advance(task)
            state["section"] = section
            bar.update(task, description=text)

        yield tick
        bar.update(task, completed=total, description="done")


# -- entry point -----------------------------------------------------------------------------------------
@dataclass
class PerfReport:
    """What :func:`main` writes to ``perf.json``."""

    schema: int
    date: str
    quick: bool
    command: str
    machine: dict[str, Any]
    versions: dict[str, str]
    sections: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


def summarise(sections: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per target: section, case, value, target and pass/fail."""
    out: list[dict[str, Any]] = []

    def line(section: str, case: str, value: Any, target: Any, ok: bool) -> None:
        out.append({"section": section, "case": case, "value": value, "target": target, "pass": ok})

    for name in ("overhead", "regulariser", "extraction"):
        for case in sections.get(name, {}).get("cases", []):
            label = case.get("name") or case.get("teacher") or f"dψ={case.get('teacher_dim')}"
            line(name, label, case["ratio"], case["target"], case["pass"])
    if "runs" in sections.get("memory", {}):
        m = sections["memory"]
        line("memory", f"{m['bank_gib']:.2f} GiB bank", m["ours_minus_none_mib"], m["target"], m["pass"])
    if "rows" in sections.get("scaling", {}):
        s = sections["scaling"]
        span = f"{s['rows'][0]:,} → {s['rows'][-1]:,} rows"
        for what in ("lookup", "step"):
            ratio = s[f"{what}_ratio_largest_smallest"]
            line("scaling", f"{what} {span}", ratio, "<= 1.5", ratio <= 1.5)
    for name, sec in sections.items():
        if "error" in sec:
            line(name, "error", None, None, False)
    return out


def main(
    out: Path,
    quick: bool = False,
    progress: bool = True,
    sections: Sequence[str] | None = None,
    work_dir: Path | None = None,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Run the performance benchmark and write ``out/perf.json`` and ``out/perf.png``.

    Args:
        out: output folder (created).
        quick: shrink every size for a smoke run (figures are then not meaningful).
        progress: show a progress bar on stderr.
        sections: a subset of ``overhead, regulariser, extraction, memory, scaling``.
        work_dir: where the synthetic banks go (default: the system temp folder); removed after.
        threads: torch intra-op threads (default 1: on a shared, oversubscribed machine two
            OpenMP threads that wait for each other make timings several times slower and far
            noisier; ``None`` keeps torch's default). Memory children inherit it.

    A section that fails is recorded with its error and the others still run.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = list(sections or SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        from fusion_aft.errors import UserInputError

        raise UserInputError(f"unknown perf section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    sizes = quick_sizes() if quick else full_sizes()
    import torch

    if threads is not None:
        torch.set_num_threads(int(threads))
        os.environ["OMP_NUM_THREADS"] = str(int(threads))  # the memory subprocesses
    report = PerfReport(
        schema=SCHEMA,
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        quick=quick,
        command="fusion-aft bench perf --out "
        + str(out)
        + (" --quick" if quick else "")
        + "".join(f" --section {name}" for name in (sections or ())),
        machine=machine_info(),
        versions=library_versions(),
    )
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="fusion-aft-perf-", dir=work_dir))
    runners: dict[str, Callable[[Callable[[str], None]], dict[str, Any]]] = {
        "overhead": lambda tick: run_overhead(sizes, work, tick),
        "regulariser": lambda tick: run_regulariser(sizes, tick),
        "extraction": lambda tick: run_extraction(sizes, work, tick),
        "memory": lambda tick: run_memory(sizes, work, tick),
        "scaling": lambda tick: run_scaling(sizes, work, tick),
    }
    try:
        with _progress(progress, len(chosen)) as tick:
            for name in chosen:
                tick(f"{name}: starting")
                t0 = time.perf_counter()
                try:
                    result = runners[name](tick)
                except Exception as exc:  # noqa: BLE001 - one failing section must not lose the others
                    log.exception("perf section %s failed", name)
                    result = {"error": f"{type(exc).__name__}: {exc}", "pass": False}
                result["wall_s"] = round(time.perf_counter() - t0, 2)
                report.sections[name] = result
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.machine["load_average_end"] = load_average()
    report.targets = summarise(report.sections)
    report.wall_s = round(time.perf_counter() - t_start, 2)
    data = asdict(report)
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    atomic_write_text(out / "perf.json", text)
    plot(data, out / "perf.png")
    return data
