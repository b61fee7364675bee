"""Run the cells of one task phase in several worker processes (``fusion-aft bench --jobs N``).

Small students on a CPU use one core badly: two processes with one torch thread each finish a
suite's cells about twice as fast on two cores as one process with two threads. Each worker
prepares the task once (data and cached banks; nothing is extracted again), trains its share of
the cells and writes every finished cell to the store as it goes, so an interrupted parallel run
resumes like a sequential one. Results do not depend on which worker ran a cell: every cell is
seeded from its own settings.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from fusion_aft.bench.cells import Cell
from fusion_aft.bench.store import CellStore
from fusion_aft.bench.suite import ResolvedTask

__all__ = ["cell_cost", "partition", "run_parallel", "threads_per_job"]

log = logging.getLogger(__name__)

#: relative cost of one cell by method (STL skips the unlabelled rows and the bank; RKD's angle
#: term and FT's autoencoder pretraining cost more than a kernel or a linear head)
_COST = {"none": 0.3, "rkd": 1.6, "ft": 1.4}


def cell_cost(cell: Cell) -> float:
    """A rough relative cost, used only to balance the workers' shares."""
    return _COST.get(cell.method, 1.0) * max(1, len(cell.teachers)) ** 0.25


def partition(cells: Sequence[Cell], jobs: int) -> list[list[Cell]]:
    """Split ``cells`` into at most ``jobs`` non-empty shares of similar total cost.

    Longest first onto the least loaded share; each share keeps the cells' original order.
    """
    jobs = max(1, min(jobs, len(cells)))
    shares: list[list[int]] = [[] for _ in range(jobs)]
    load = [0.0] * jobs
    for i in sorted(range(len(cells)), key=lambda i: (-cell_cost(cells[i]), i)):
        j = min(range(jobs), key=lambda j: (load[j], j))
        shares[j].append(i)
        load[j] += cell_cost(cells[i])
    return [[cells[i] for i in sorted(s)] for s in shares if s]


def threads_per_job(jobs: int) -> int:
    """Torch threads per worker: the machine's cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def _worker(
    task: ResolvedTask, device: str, out_dir: str, cells: list[Cell], threads: int, stop_file: str
) -> int:
    """Prepare ``task`` in this process and train ``cells`` into the store; return how many ran.

    Stops before the next cell once ``stop_file`` exists (another worker failed, or the run was
    interrupted), so an error surfaces after the cell in training, not after the whole share.
    """
    import torch

    from fusion_aft.bench.cell import prepare_task, train_cell
    from fusion_aft.training.run import resolve_device

    torch.set_num_threads(threads)
    ctx = prepare_task(task, resolve_device(device), progress=False)
    store = CellStore(Path(out_dir))
    ran = 0
    for cell in cells:
        if os.path.exists(stop_file):
            log.info("stopping before %s: another worker failed or the run was interrupted", cell.key)
            break
        if store.get(cell) is not None:
            continue
        store.put(cell, train_cell(ctx, cell, Path(out_dir) / "runs" / cell.key))
        ran += 1
    return ran


def _stamp(path: Path) -> int | None:
    """The file's modification time in ns, or None when it does not exist."""
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def run_parallel(
    task: ResolvedTask,
    cells: Sequence[Cell],
    out_dir: Path,
    jobs: int,
    on_progress: Callable[[int], None] | None = None,
    poll_seconds: float = 1.0,
) -> int:
    """Train ``cells`` (training cells only, none finished yet) in ``jobs`` worker processes.

    ``on_progress(n)`` is called with the number of cells finished since the last call. Returns
    the number of cells run. A worker's error (or an interrupt) is raised here once the other
    workers have finished the cell each is training; they start no further cell. The cells
    already finished stay in the store.
    """
    if not cells:
        return 0
    store = CellStore(out_dir)
    # progress from file stamps (a worker's put replaces the cell's file): polling stays a stat
    # per unfinished cell instead of parsing every result file each time
    paths = {c.key: store.path(c) for c in cells}
    stamps = {key: _stamp(path) for key, path in paths.items()}
    shares = partition(cells, jobs)
    threads = threads_per_job(len(shares))
    stop_file = Path(out_dir) / f".stop-{os.getpid()}"
    stop_file.unlink(missing_ok=True)
    # spawn: a fresh interpreter per worker (forking a process that already runs torch threads
    # can deadlock in OpenMP)
    context = multiprocessing.get_context("spawn")
    try:
        with cf.ProcessPoolExecutor(max_workers=len(shares), mp_context=context) as pool:
            futures = [
                pool.submit(_worker, task, task.device, str(out_dir), share, threads, str(stop_file))
                for share in shares
            ]
            pending = set(futures)
            try:
                while pending:
                    done, pending = cf.wait(pending, timeout=poll_seconds, return_when=cf.FIRST_EXCEPTION)
                    landed = [key for key, stamp in stamps.items() if _stamp(paths[key]) != stamp]
                    for key in landed:
                        del stamps[key]
                    if on_progress is not None and landed:
                        on_progress(len(landed))
                    for future in done:
                        future.result()  # re-raise a worker's error
            except BaseException:
                stop_file.touch()  # the other workers finish their current cell and stop
                for future in pending:
                    future.cancel()
                raise
    finally:
        stop_file.unlink(missing_ok=True)
    return sum(f.result() for f in futures)
