"""Process-group helpers for runs launched by ``torchrun`` (``torch.distributed``).

``torchrun --nproc_per_node=N`` starts N processes and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each; :func:`init` reads them and joins the
default process group (backend ``gloo`` on CPU; ``cpu:gloo,cuda:nccl`` on CUDA, so that CPU
tensors (bank bytes, small objects) travel over gloo and CUDA tensors over NCCL). Outside torchrun
every helper answers as a single process (rank 0 of 1) and no group is created.

:func:`all_gather` concatenates a tensor from every rank along dim 0 with autograd: the gradient
of the result flows back to this rank's own rows only (no communication in the backward pass).
When every rank computes the same loss from the gathered tensor, the gradient it leaves on the
local rows is the exact gradient of that loss w.r.t. them; :func:`scale_grad` multiplies it by
the world size so that DistributedDataParallel's averaging over ranks gives the single-process
gradient (see :mod:`fusion_aft.training.distributed`).
"""

from __future__ import annotations

import atexit
import datetime
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch

from fusion_aft.errors import UserInputError

__all__ = [
    "all_gather",
    "all_gather_object",
    "barrier",
    "broadcast_object",
    "cpu_group",
    "init",
    "is_initialized",
    "is_main",
    "launched",
    "local_device",
    "local_rank",
    "rank",
    "scale_grad",
    "shard",
    "world_size",
]

log = logging.getLogger(__name__)

#: how long a collective may wait for the slowest rank (a rank extracting a big chunk, a rank
#: loading a teacher) before the job fails; override with FUSION_AFT_DIST_TIMEOUT_S
DEFAULT_TIMEOUT_S = 3600

_CPU_GROUP: Any = None
_EXIT_GROUP: Any = None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UserInputError(f"environment variable {name}={raw!r} is not an integer") from None


def shard(items: Sequence[Any], rank: int, world: int) -> list[Any]:
    """Rank ``rank``'s contiguous share of ``items`` (shares differ in size by at most one);
    concatenating the shares in rank order gives ``items`` back."""
    n = len(items)
    return list(items[rank * n // world : (rank + 1) * n // world])


def launched() -> bool:
    """True inside a multi-process launch (``WORLD_SIZE`` > 1 in the environment)."""
    return _env_int("WORLD_SIZE", 1) > 1


def is_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes in the job (1 outside torchrun)."""
    if is_initialized():
        import torch.distributed as dist

        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1)


def rank() -> int:
    """This process's global rank (0 outside torchrun)."""
    if is_initialized():
        import torch.distributed as dist

        return dist.get_rank()
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its node (its GPU index under torchrun)."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """True on rank 0, the one that writes metrics, checkpoints and output."""
    return rank() == 0


def local_device(device: Any) -> torch.device:
    """``device`` with the GPU index of this rank: ``cuda`` → ``cuda:LOCAL_RANK`` under torchrun."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None and launched():
        return torch.device("cuda", local_rank())
    return dev


def init(device: Any = "cpu") -> bool:
    """Join the default process group when launched by torchrun; returns True when distributed.

    Idempotent. The backend is ``gloo`` for CPU devices and ``cpu:gloo,cuda:nccl`` for CUDA ones.
    """
    if not launched():
        return False
    if is_initialized():
        return True
    import torch.distributed as dist

    if not dist.is_available():
        raise UserInputError("this PyTorch build has no torch.distributed; install a build with it")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise UserInputError(
            f"WORLD_SIZE is set but {', '.join(missing)} are not; start the command with torchrun "
            "(e.g. torchrun --nproc_per_node=2 -m fusion_aft.cli ...)"
        )
    dev = local_device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserInputError(f"device '{device}' was asked for but CUDA is not available here")
        torch.cuda.set_device(dev)
        backend = "cpu:gloo,cuda:nccl" if dist.is_nccl_available() else "gloo"
    else:
        backend = "gloo"
    timeout = datetime.timedelta(seconds=_env_int("FUSION_AFT_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    dist.init_process_group(backend=backend, timeout=timeout)
    global _EXIT_GROUP
    _EXIT_GROUP = dist.new_group(backend="gloo")  # its barrier never pairs with the work's collectives
    atexit.register(_destroy)
    log.info("joined the process group: rank %d of %d (backend %s)", rank(), world_size(), backend)
    return True


def _destroy() -> None:
    """Leave the group at exit, after the other ranks reach the same point (ranks tearing down
    their connections while a peer still uses them abort the process); a rank that failed early
    waits at most a minute here instead of hanging the job."""
    global _CPU_GROUP, _EXIT_GROUP
    if is_initialized():
        import torch.distributed as dist

        try:
            work = dist.barrier(group=_EXIT_GROUP, async_op=True)
            work.wait(timeout=datetime.timedelta(seconds=60))
        except Exception:  # noqa: BLE001 - a peer is gone; leave anyway
            pass
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - interpreter shutdown; nothing left to report to
            pass
    _CPU_GROUP = _EXIT_GROUP = None


def cpu_group() -> Any:
    """A group that carries CPU tensors: the default one when it has gloo, else a gloo group."""
    global _CPU_GROUP
    import torch.distributed as dist

    if "gloo" in str(dist.get_backend()):
        return None  # None = the default group
    if _CPU_GROUP is None:
        _CPU_GROUP = dist.new_group(backend="gloo")
    return _CPU_GROUP


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_initialized():
        import torch.distributed as dist

        dist.barrier(group=cpu_group())


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (picklable objects; no-op in a single process)."""
    if not is_initialized():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src, group=cpu_group())
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    if not is_initialized():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj, group=cpu_group())
    return out


class _AllGather(torch.autograd.Function):
    """Concatenate every rank's rows; the backward keeps this rank's slice of the gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        n = dist.get_world_size()
        me = dist.get_rank()
        size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
        sizes = [torch.zeros_like(size) for _ in range(n)]
        dist.all_gather(sizes, size)
        counts = [int(s.item()) for s in sizes]
        longest = max(counts)
        padded = x.contiguous()
        if x.shape[0] < longest:
            pad = x.new_zeros((longest - x.shape[0], *x.shape[1:]))
            padded = torch.cat([padded, pad])
        parts = [torch.empty_like(padded) for _ in range(n)]
        dist.all_gather(parts, padded)
        ctx.start = sum(counts[:me])
        ctx.count = counts[me]
        return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad[ctx.start : ctx.start + ctx.count]


def all_gather(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` from every rank concatenated in rank order (``[Σ B_r, ...]``).

    Ranks may hold different numbers of rows. Gradients flow to this rank's rows only;
    in a single process this is ``x`` itself.
    """
    if not is_initialized() or world_size() == 1:
        return x
    return _AllGather.apply(x)


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def scale_grad(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` in the forward pass; its gradient multiplied by ``factor`` in the backward pass."""
    if factor == 1:
        return x
    return _ScaleGrad.apply(x, float(factor))
