"""Section 4, ``memory``: peak RSS of an epoch over a memory-mapped bank, in subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
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
from fusion_aft.bench.perf.timing import bank_bytes


def memory_child(mode: str, folder: str, steps: int | None, batch: int, seed: int = 0) -> dict[str, Any]:
    """One training epoch over the bank's rows in this process; returns peak RSS and the rest.

    ``mode``: ``none`` (STL, no bank), ``ours`` (:class:`JointBank`, memory-mapped, rows by id),
    ``ram`` (the whole feature file read into memory first, rows by position, as the reference
    code does). The student is a small MLP so the bank dominates what changes.
    """
    import resource

    import torch

    from fusion_aft.bank.joint import JointBank
    from fusion_aft.bank.store import FEATURES, TeacherBank

    torch.manual_seed(seed)
    meta = TeacherBank.open(folder)
    rows, width = meta.manifest.shape
    n_steps = steps if steps is not None else rows // batch
    order = np.random.default_rng(seed).permutation(rows)
    method = "none" if mode == "none" else "aft"
    runner = StepRunner(
        "mlp", {"input_dim": 64, "hidden": [256, 128]}, method, {"synthetic": width}, None, batch
    )
    bank = features = None
    if mode == "ours":
        bank = JointBank.open([folder])
    elif mode == "ram":
        features = np.load(Path(folder) / FEATURES)  # the whole array in memory
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 64, generator=gen)
    labels = torch.randint(0, 10, (batch,), generator=gen)
    t0 = time.perf_counter()
    for k in range(n_steps):
        positions = order[k * batch : (k + 1) * batch]
        if mode == "ours":
            runner.bank = bank
            runner.step(inputs, labels, [str(int(p)) for p in positions])
        elif mode == "ram":
            teacher_rows = torch.from_numpy(features[positions].astype(np.float32))
            _ram_step(runner, inputs, labels, teacher_rows)
        else:
            runner.step(inputs, labels, None)
    wall = time.perf_counter() - t0
    status = _proc_status()
    maxrss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return {
        "mode": mode,
        "steps": n_steps,
        "rows_read": n_steps * batch,
        "wall_s": round(wall, 2),
        # VmHWM is the peak RSS of this process image; ru_maxrss also carries the RSS of the
        # parent at fork time across exec (so it cannot go below the benchmark process's size)
        "peak_rss_mib": status.get("VmHWM", maxrss),
        "ru_maxrss_mib": maxrss,
        "rss_anon_mib_end": status.get("RssAnon"),
        "rss_file_mib_end": status.get("RssFile"),
    }


def _ram_step(runner: StepRunner, inputs: Any, labels: Any, teacher: Any) -> None:
    import torch.nn.functional as F

    from fusion_aft.training.engine import regulariser

    logits, features = runner.student(inputs)
    loss = F.cross_entropy(logits, labels) + runner.beta * regulariser(runner.objective, features, teacher)[0]
    runner.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    runner.optimizer.step()


def _proc_status() -> dict[str, float]:
    out = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmHWM"):
                out[key] = round(int(rest.split()[0]) / 1024, 1)
    return out


def _run_child(mode: str, folder: Path, steps: int | None, batch: int) -> dict[str, Any]:
    code = (
        "import json, sys; from fusion_aft.bench.perf.memory import memory_child; "
        "print('@@' + json.dumps(memory_child(*json.loads(sys.argv[1]))))"
    )
    args = json.dumps([mode, str(folder), steps, batch])
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-c", code, args], capture_output=True, text=True, env=env, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory run '{mode}' failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1][2:])


def run_memory(sizes: Sizes, work: Path, tick: Callable[[str], None]) -> dict[str, Any]:
    rows, width = sizes.memory_rows, sizes.memory_width
    need = bank_bytes(rows, width)
    free = shutil.disk_usage(work).free
    if free < need * 1.5:
        raise RuntimeError(
            f"the memory benchmark needs {need / GIB:.1f} GiB free in {work}, "
            f"{free / GIB:.1f} GiB free; pass another work folder"
        )
    tick(f"memory: writing a {need / GIB:.2f} GiB bank")
    folder = write_synthetic_bank(work / "memory-bank", rows, width, ref="synthetic")
    try:
        bank_size = sum(p.stat().st_size for p in folder.iterdir())
        results = {}
        for mode in ("none", "ours", "ram"):
            tick(f"memory: {mode}")
            results[mode] = _run_child(mode, folder, sizes.memory_steps, 128)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    extra = results["ours"]["peak_rss_mib"] - results["none"]["peak_rss_mib"]
    return {
        "what": "peak RSS (VmHWM, read in the child) of one training epoch (MLP student, batch 128, AFT) "
        "reading every row of a synthetic on-disk bank once, each arm in its own subprocess; 'ram' "
        "reads the whole feature file into memory first as the reference code does",
        "bank_rows": rows,
        "bank_width": width,
        "bank_dtype": "float16",
        "bank_gib": round(bank_size / GIB, 3),
        "runs": results,
        "ours_minus_none_mib": round(extra, 1),
        "ram_minus_none_mib": round(results["ram"]["peak_rss_mib"] - results["none"]["peak_rss_mib"], 1),
        "target": "ours - none <= 1024 MiB",
        "pass": bool(extra <= 1024),
    }
