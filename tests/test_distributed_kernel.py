"""Global-kernel AFT under DDP equals single-process AFT on the concatenated batch (loss and
gradients), and the local kernel equals the mean of per-process kernels; plus the CPU-only
pieces (sharding, sampler, all_gather outside a process group)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fusion_aft import distributed
from fusion_aft.training.distributed import Parallel, ShardedStepBatchSampler
from fusion_aft.training.sampler import StepBatchSampler, Stream

pytestmark = pytest.mark.xdist_group("torchrun")

WORLD = 2
BETA = 3.0

# Runs on each rank: the fixed global batch, this rank's contiguous half, DDP + the objective.
DRIVER = r"""
import sys, torch
import torch.nn.functional as F
from fusion_aft import distributed
import fusion_aft.objectives as objectives, fusion_aft.students as students
from fusion_aft.training.distributed import Parallel

out, BETA = sys.argv[1], float(sys.argv[2])
distributed.init("cpu")
rank, world = distributed.rank(), distributed.world_size()


def run(mode):
    class Cfg:
        global_kernel = mode == "global"

    torch.manual_seed(0)
    x = torch.randn(12, 20)
    y = torch.randint(0, 3, (12,))
    psi = torch.randn(12, 10)
    torch.manual_seed(1)
    student = students.create("mlp", 3, hidden=[16, 8], input_dim=20)
    objective = objectives.create("aft", student_dim=8, teacher_dims={"a": 6, "b": 4})
    with torch.no_grad():
        objective.weights.s.copy_(torch.linspace(-1, 1, 10))  # a non-uniform mu gives s a gradient
    part = slice(rank * 12 // world, (rank + 1) * 12 // world)
    par = Parallel(Cfg(), torch.device("cpu"), needs_pairs=True)
    par.wrap(student, objective)
    logits, feats = par.forward(student, x[part])
    reg, _ = par.regulariser(objective, feats, psi[part])
    ce = F.cross_entropy(logits, y[part])
    (ce + BETA * reg).backward()

    s_grad = objective.weights.s.grad.clone()

    # the regulariser's gradient w.r.t. this rank's feature rows (a leaf, objective not DDP-wrapped)
    leaf = feats.detach().requires_grad_()
    plain = Parallel(Cfg(), torch.device("cpu"), needs_pairs=True)
    (BETA * plain.regulariser(objective, leaf, psi[part])[0]).backward()

    # uneven all_gather: rank r sends r + 2 rows; the gradient comes back to its own rows only
    own = torch.full((rank + 2, 3), float(rank + 1), requires_grad=True)
    gathered = distributed.all_gather(own)
    (gathered * torch.arange(gathered.shape[0]).unsqueeze(1)).sum().backward()

    torch.save({
        "reg": reg.detach(), "ce": ce.detach(), "feats_grad": leaf.grad,
        "grads": {k: p.grad for k, p in student.named_parameters()},
        "s_grad": s_grad,
        "gathered": gathered.detach(), "own_grad": own.grad,
    }, f"{out}/{mode}/rank{rank}.pt")


for mode in ("global", "local"):
    run(mode)
"""


def torchrun(script: Path, *args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node=2 script args`` (CPU, gloo)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           str(script), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def _reference(mode: str) -> dict:
    """The same maths in one process: the whole batch (global) or the mean of the halves (local)."""
    import torch.nn.functional as F

    import fusion_aft.objectives as objectives
    import fusion_aft.students as students

    torch.manual_seed(0)
    x = torch.randn(12, 20)
    y = torch.randint(0, 3, (12,))
    psi = torch.randn(12, 10)
    torch.manual_seed(1)
    student = students.create("mlp", 3, hidden=[16, 8], input_dim=20)
    objective = objectives.create("aft", student_dim=8, teacher_dims={"a": 6, "b": 4})
    with torch.no_grad():
        objective.weights.s.copy_(torch.linspace(-1, 1, 10))
    logits, feats = student(x)
    if mode == "global":
        reg, _ = objective(feats, psi)
    else:
        halves = [slice(0, 6), slice(6, 12)]
        reg = sum(objective(feats[h], psi[h])[0] for h in halves) / WORLD
    ce = F.cross_entropy(logits, y)
    (feats_grad,) = torch.autograd.grad(BETA * reg, feats, retain_graph=True)
    (ce + BETA * reg).backward()
    return {
        "reg": reg.detach(),
        "feats_grad": feats_grad,
        "grads": {k: p.grad for k, p in student.named_parameters()},
        "s_grad": objective.weights.s.grad.clone(),
    }


@pytest.fixture(scope="session")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    # computed once for the whole test run, also when pytest-xdist spreads the tests over workers
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent / "ddp_kernel"
    with FileLock(str(root) + ".lock"):
        if not (root / "done").exists():
            root.mkdir(exist_ok=True)
            script = root / "driver.py"
            script.write_text(DRIVER, encoding="utf8")
            for mode in ("global", "local"):
                (root / mode).mkdir(exist_ok=True)
            torchrun(script, str(root), str(BETA), cwd=root)
            (root / "done").touch()
    return {m: [torch.load(root / m / f"rank{r}.pt") for r in range(WORLD)] for m in ("global", "local")}


def test_global_kernel_loss_equals_single_process_loss_on_the_concatenated_batch(ranks) -> None:
    ref = _reference("global")
    for r in range(WORLD):
        torch.testing.assert_close(ranks["global"][r]["reg"], ref["reg"], atol=1e-5, rtol=0)


def test_global_kernel_gradients_after_ddp_averaging_equal_single_process(ranks) -> None:
    ref = _reference("global")
    got = ranks["global"]
    for r in range(WORLD):
        # DDP has averaged: every rank holds the single-process gradient of CE + β·R
        for name, grad in ref["grads"].items():
            torch.testing.assert_close(got[r]["grads"][name], grad, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got[r]["s_grad"], ref["s_grad"], atol=1e-6, rtol=1e-4)
        # β·R leaves world × its single-process gradient on the local rows; DDP's averaging undoes it
        rows = slice(r * 6, (r + 1) * 6)
        local = got[r]["feats_grad"] / WORLD
        torch.testing.assert_close(local, ref["feats_grad"][rows], atol=1e-6, rtol=1e-4)
    assert ref["s_grad"].abs().max() > 1e-4  # the μ gradient is really compared, not zeros


def test_local_kernel_is_the_mean_of_per_process_kernels(ranks) -> None:
    ref = _reference("local")
    got = ranks["local"]
    regs = torch.stack([got[r]["reg"] for r in range(WORLD)])
    torch.testing.assert_close(regs.mean(), ref["reg"], atol=1e-6, rtol=0)
    assert abs(float(regs[0] - regs[1])) > 1e-4  # each rank's kernel covers its own rows
    for r in range(WORLD):
        for name, grad in ref["grads"].items():
            torch.testing.assert_close(got[r]["grads"][name], grad, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got[r]["s_grad"], ref["s_grad"], atol=1e-6, rtol=1e-4)


def test_all_gather_handles_uneven_rows_and_returns_gradient_to_local_rows(ranks) -> None:
    for r in range(WORLD):
        got = ranks["global"][r]
        expected = torch.cat([torch.full((k + 2, 3), float(k + 1)) for k in range(WORLD)])
        torch.testing.assert_close(got["gathered"], expected)
        start = sum(k + 2 for k in range(r))
        rows = torch.arange(start, start + r + 2, dtype=torch.float32).unsqueeze(1).expand(r + 2, 3)
        torch.testing.assert_close(got["own_grad"], rows)


# -- CPU pieces without a process group ----------------------------------------------------------
def test_shard_is_contiguous_disjoint_and_covers_everything() -> None:
    items = list(range(11))
    parts = [distributed.shard(items, r, 3) for r in range(3)]
    assert parts == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9, 10]]
    assert distributed.shard([], 0, 2) == []


def test_sharded_sampler_splits_each_stream_of_the_global_batch() -> None:
    streams = [Stream(50, 8, 0, key=0), Stream(30, 4, 50, key=1)]
    whole = list(StepBatchSampler(streams, seed=3, total_steps=9))
    parts = [list(ShardedStepBatchSampler(streams, 3, 9, 0, r, 2)) for r in range(2)]
    for step, batch in enumerate(whole):
        a, b = parts[0][step], parts[1][step]
        assert not {i for _, i in a} & {i for _, i in b}
        assert sorted(a + b) == sorted(batch)
        # labelled rows first on every rank (the loop relies on it), shared out evenly
        counts = []
        for part in (a, b):
            idx = [i for _, i in part]
            assert idx == sorted(idx, key=lambda i: i >= 50)
            counts.append(sum(i < 50 for i in idx))
        assert counts == ([4, 4] if step % 7 != 6 else [1, 1])  # 50 rows: 6 batches of 8, then 2


def test_parallel_is_a_no_op_in_a_single_process() -> None:
    class Cfg:
        global_kernel = True

    par = Parallel(Cfg(), torch.device("cpu"), needs_pairs=True)
    assert not par.active and par.is_main
    x = torch.randn(4, 3, requires_grad=True)
    assert distributed.all_gather(x) is x
    assert type(par.sampler([Stream(10, 4)], 0, 3, 0)) is StepBatchSampler
    assert par.sync_resume(5, 5, None, None, None, None, None) == (5, 5)
