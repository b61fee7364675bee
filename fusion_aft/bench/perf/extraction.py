"""Section 3, ``extraction``: rows/s of extraction ÷ rows/s of the bare forward."""

from __future__ import annotations

import gc
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fusion_aft.bench.perf.sizes import (
    Sizes,
)
from fusion_aft.bench.perf.timing import interleaved, med


def run_extraction(sizes: Sizes, work: Path, tick: Callable[[str], None]) -> dict[str, Any]:
    import torch

    import fusion_aft
    from fusion_aft.bank.extract import auto_workers

    cases = []
    datasets: dict[str, Any] = {}
    for spec in sizes.extraction:
        tick(f"extraction: {spec['teacher']}")
        if spec["dataset"] not in datasets:
            datasets[spec["dataset"]] = fusion_aft.datasets.load(spec["dataset"])
        ds = datasets[spec["dataset"]]
        source = ds.split("train")
        rows = min(int(spec["rows"]), len(source))
        split = source.subset(range(rows), name="perf")
        teacher = fusion_aft.teachers.load(spec["teacher"])
        bs = int(spec["batch"])
        batches = [
            teacher.collate([teacher.prepare(split[i]) for i in range(s, min(rows, s + bs))])
            for s in range(0, rows, bs)
        ]

        def bare(teacher=teacher, batches=batches) -> None:
            with torch.no_grad():
                for batch in batches:
                    teacher.forward_batch(batch)

        def extract(teacher=teacher, split=split, ds=ds, bs=bs) -> None:
            cache = Path(tempfile.mkdtemp(prefix="extract-", dir=work))
            try:
                fusion_aft.extract([teacher], ds, split, cache_dir=cache, batch_size=bs, progress=False)
            finally:
                shutil.rmtree(cache, ignore_errors=True)

        times = interleaved({"bare": bare, "extract": extract}, sizes.extraction_reps, warmup=1)
        bare_rate = rows / med(times["bare"])
        ext_rate = rows / med(times["extract"])
        ratio = ext_rate / bare_rate
        cases.append(
            {
                "teacher": spec["teacher"],
                "dataset": spec["dataset"],
                "rows": rows,
                "batch": bs,
                "num_workers_cap": auto_workers(rows, bs),
                "bare_forward_rows_per_s": round(bare_rate, 2),
                "extract_rows_per_s": round(ext_rate, 2),
                "ratio": round(ratio, 6),
                "repetitions": sizes.extraction_reps,
                "target": ">= 0.9",
                "pass": bool(ratio >= 0.9),
            }
        )
        del teacher, batches
        gc.collect()
    return {
        "what": "rows/s of fusion_aft.extract (prepare, DataLoader, forward, fp16, checksums, manifest) / "
        "rows/s of teacher.forward_batch on pre-loaded batches, same batch size",
        "cases": cases,
        "pass": all(c["pass"] for c in cases),
    }
