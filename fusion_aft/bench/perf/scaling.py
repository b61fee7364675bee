"""Section 5, ``scaling``: bank open, row lookup and step time from 10⁴ to 10⁷ rows."""

from __future__ import annotations

import gc
import itertools
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fusion_aft.bank.synthetic import write_synthetic_bank
from fusion_aft.bench.perf.overhead import StepRunner
from fusion_aft.bench.perf.sizes import (
    GIB,
    Sizes,
)
from fusion_aft.bench.perf.timing import bank_bytes, interleaved, med, ms


def run_scaling(sizes: Sizes, work: Path, tick: Callable[[str], None]) -> dict[str, Any]:
    import torch

    from fusion_aft.bank.joint import JointBank

    width, batch = sizes.scaling_width, 128
    need = sum(bank_bytes(n, width) for n in sizes.scaling_rows) * 2
    if shutil.disk_usage(work).free < need:
        raise RuntimeError(f"the scaling benchmark needs about {need / GIB:.1f} GiB free in {work}")
    banks: dict[int, Any] = {}
    open_s: dict[int, float] = {}
    index_s: dict[int, float] = {}
    verify_s: dict[int, float] = {}
    folders = []
    try:
        for n in sizes.scaling_rows:
            tick(f"scaling: writing {n:,} rows")
            folder = write_synthetic_bank(work / f"scaling-{n}", n, width, ref="synthetic")
            folders.append(folder)
            gc.collect()
            t0 = time.perf_counter()
            bank = JointBank.open([folder])
            t1 = time.perf_counter()
            bank.rows(["0"])  # the id index is built on the first lookup
            t2 = time.perf_counter()
            # each chunk's checksum is checked on its first read: check them all now, in one pass
            store = bank.banks[0]
            store.checked_rows(np.arange(0, n, store.manifest.chunk_rows))
            t3 = time.perf_counter()
            open_s[n], index_s[n], verify_s[n] = t1 - t0, t2 - t1, t3 - t2
            banks[n] = bank
        tick("scaling: lookups and steps")
        rng = np.random.default_rng(0)
        runners = {
            n: StepRunner(
                "mlp", {"input_dim": 64, "hidden": [256, 128]}, "aft", {"synthetic": width}, banks[n], batch
            )
            for n in sizes.scaling_rows
        }
        gen = torch.Generator().manual_seed(0)
        inputs = torch.randn(batch, 64, generator=gen)
        labels = torch.randint(0, 10, (batch,), generator=gen)

        def ids_for(n: int) -> list[str]:
            return [str(int(i)) for i in rng.choice(n, batch, replace=False)]

        # id batches drawn before timing (drawing costs grow with n; the lookups should not)
        draws = max(sizes.scaling_lookups, sizes.scaling_steps) + 8
        pools = {n: itertools.cycle([ids_for(n) for _ in range(draws)]) for n in sizes.scaling_rows}
        lookups = interleaved(
            {n: (lambda n=n: banks[n].rows(next(pools[n]))) for n in sizes.scaling_rows},
            sizes.scaling_lookups,
            warmup=3,
        )
        steps = interleaved(
            {n: (lambda n=n: runners[n].step(inputs, labels, next(pools[n]))) for n in sizes.scaling_rows},
            sizes.scaling_steps,
            warmup=2,
        )
        id_cost = interleaved({"ids": lambda: ids_for(sizes.scaling_rows[-1])}, sizes.scaling_lookups)
    finally:
        banks.clear()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    small, large = sizes.scaling_rows[0], sizes.scaling_rows[-1]
    lookup_ratio = med(lookups[large]) / med(lookups[small])
    step_ratio = med(steps[large]) / med(steps[small])
    return {
        "what": "JointBank open time (manifest + checks), id-index build (first lookup), checksum of every "
        "chunk (done once per process, on first read), rows(ids) for a random batch of 128 ids, "
        "and one AFT training step (MLP student, lookup included) as the "
        f"bank grows; width {width} fp16; lookups and steps interleaved across sizes",
        "width": width,
        "batch": batch,
        "rows": sizes.scaling_rows,
        "open_s": [round(open_s[n], 6) for n in sizes.scaling_rows],
        "index_build_s": [round(index_s[n], 6) for n in sizes.scaling_rows],
        "verify_all_chunks_s": [round(verify_s[n], 6) for n in sizes.scaling_rows],
        "lookup_ms": [ms(med(lookups[n])) for n in sizes.scaling_rows],
        "step_ms": [ms(med(steps[n])) for n in sizes.scaling_rows],
        "id_sampling_ms": ms(med(id_cost["ids"])),
        "lookup_ratio_largest_smallest": round(lookup_ratio, 4),
        "step_ratio_largest_smallest": round(step_ratio, 4),
        "target": "lookup and step ratio (largest / smallest bank) <= 1.5",
        "pass": bool(lookup_ratio <= 1.5 and step_ratio <= 1.5),
    }
