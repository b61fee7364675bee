"""Sharing a phase's cells out to worker processes."""

from __future__ import annotations

from fusion_aft.bench.cells import Cell
from fusion_aft.bench.parallel import cell_cost, partition, threads_per_job


def _cells(methods):
    return [Cell("t", "run", m, ("a", "b") if m != "none" else (), seed) for seed, m in enumerate(methods)]


def test_partition_keeps_every_cell_once_in_order_and_balances_cost():
    cells = _cells(["none", "kd", "rkd", "ft", "btune", "aft"] * 3)
    shares = partition(cells, 2)
    assert len(shares) == 2
    flat = [c for s in shares for c in s]
    assert sorted(flat, key=cells.index) == cells and len(set(map(id, flat))) == len(cells)
    for share in shares:
        assert share == sorted(share, key=cells.index)
    loads = [sum(cell_cost(c) for c in s) for s in shares]
    assert abs(loads[0] - loads[1]) <= max(cell_cost(c) for c in cells)


def test_partition_never_makes_empty_shares():
    cells = _cells(["aft"])
    assert partition(cells, 4) == [cells]
    assert partition([], 3) == []


def test_threads_per_job_shares_the_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert [threads_per_job(j) for j in (1, 2, 3, 16)] == [8, 4, 2, 1]
