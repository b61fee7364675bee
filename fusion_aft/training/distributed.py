"""Data-parallel training under ``torchrun``: DistributedDataParallel, sharded batches, rank 0 writes.

``cfg.batch_size`` stays the *global* batch: every step the stateless sampler draws the same
global batch on every rank (seeded by seed, stream and epoch) and each rank keeps its contiguous
share of each stream (labelled rows, unlabelled rows), so the ranks see disjoint parts whose
union is the single-process batch. The student and the objective's own parameters (AFT's ``s``)
are wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which averages their
gradients over the ranks, so every rank takes the same optimiser step and the weights stay
identical. Rank 0 writes metrics, checkpoints and the run folder; the other ranks work in a
private scratch folder that is removed when they exit, and take every decision that depends on
the run folder (resume or refuse, finished β candidates, the checkpoint to continue from) from
rank 0, so the job also works when the nodes share no filesystem.

The AFT kernel (Qiu et al. 2024, §3):

* by default it is computed on each rank's *local* batch of ``B / world`` rows, and the
  regulariser is the mean over ranks of the per-rank ``d_k``. Its scale does not depend on the
  batch size (about ``1/sqrt(d)`` at initialisation for independent features), so β keeps its
  meaning, but each rank's estimate of the kernel distance is noisier than one over the global
  batch;
* with ``global_kernel`` each rank gathers the student and teacher rows of all ranks
  (:func:`fusion_aft.distributed.all_gather`, gradient to the local rows only) and computes the
  kernel over the global batch, the single-process regulariser. Every rank then computes the
  same loss; the gradient that reaches its own rows is exactly ``∂R/∂Φ_local``, and because DDP
  divides the summed gradients by ``world``, the student's path is scaled by ``world``
  (:func:`fusion_aft.distributed.scale_grad`) so that the averaged gradient equals the
  single-process gradient. The objective's parameters get the same full gradient on every rank,
  which averaging leaves unchanged.

The cross-entropy is each rank's mean over its labelled rows, averaged by DDP: the
single-process mean when every rank holds as many labelled rows (``batch_size`` divisible by the
world size, as required; only the last, smaller batch of an epoch may split unevenly).
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fusion_aft import distributed as dist_util
from fusion_aft.errors import UserInputError
from fusion_aft.training.sampler import StepBatchSampler, Stream

__all__ = ["Parallel", "ShardedStepBatchSampler", "rank_setup"]

log = logging.getLogger(__name__)

#: files of the run folder whose content decides what a run does (resume, refuse, skip β)
_DECISION_FILES = ("config.json", "result.json", "sweep.json")


def rank_setup(cfg: Any, device: torch.device, run_dir: Path) -> tuple[Any, torch.device, Path]:
    """Join the process group when launched by torchrun; returns ``(cfg, device, run_dir)`` for
    this rank (unchanged in a single process).

    Rank 0 keeps the run folder. Every other rank gets a private scratch folder holding copies of
    rank 0's decision files, and progress bars and TensorBoard off.
    """
    if not dist_util.launched():
        return cfg, device, run_dir
    dist_util.init(device)
    device = dist_util.local_device(device)
    world = dist_util.world_size()
    for key in ("batch_size", "unlabelled_batch_size"):
        value = getattr(cfg, key)
        if value is not None and value % world:
            raise UserInputError(
                f"{key} {value} is the global batch and must be divisible by the {world} processes; "
                f"use a multiple of {world} (each process then gets {key} / {world} rows)"
            )
    if dist_util.is_main():
        kernel = "global batch" if getattr(cfg, "global_kernel", False) else "each process's batch"
        log.info(
            "data-parallel training on %d processes: %d rows per process and step; AFT kernel on %s",
            world,
            cfg.batch_size // world,
            kernel,
        )
    files = None
    if dist_util.is_main():
        files = {n: (run_dir / n).read_text("utf8") for n in _DECISION_FILES if (run_dir / n).is_file()}
    files = dist_util.broadcast_object(files)
    if dist_util.is_main():
        return cfg, device, run_dir
    scratch = Path(tempfile.mkdtemp(prefix=f"fusion-aft-rank{dist_util.rank()}-"))
    atexit.register(shutil.rmtree, scratch, True)
    private = scratch / "run"
    private.mkdir()
    for name, text in files.items():
        (private / name).write_text(text, encoding="utf8")
    cfg = cfg.model_copy(update={"out": private, "progress": False, "tensorboard": False})
    return cfg, device, private


class ShardedStepBatchSampler(StepBatchSampler):
    """:class:`StepBatchSampler` for one rank: its contiguous share of each stream's global batch."""

    def __init__(
        self, streams: list[Stream], seed: int, total_steps: int, start_step: int, rank: int, world: int
    ) -> None:
        super().__init__(streams, seed, total_steps, start_step)
        self.rank = rank
        self.world = world

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.total_steps):
            yield [
                (step, i)
                for s in self.streams
                for i in dist_util.shard(s.batch(self.seed, step), self.rank, self.world)
            ]


class Parallel:
    """The distributed side of one training run; a no-op outside a torchrun job.

    The training loop calls, in order: :meth:`sync_resume` (after loading a checkpoint),
    :meth:`sampler`, :meth:`wrap`, then every step :meth:`forward` and :meth:`regulariser`;
    it writes metrics and checkpoints only where :attr:`is_main`.
    """

    def __init__(self, cfg: Any, device: torch.device, needs_pairs: bool = False) -> None:
        self.active = dist_util.is_initialized() and dist_util.world_size() > 1
        self.world = dist_util.world_size() if self.active else 1
        self.rank = dist_util.rank() if self.active else 0
        self.global_kernel = bool(getattr(cfg, "global_kernel", False))
        self.needs_pairs = needs_pairs
        self.device = device
        self._student: Any = None
        self._objective: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- data -------------------------------------------------------------------------------------
    def sampler(self, streams: list[Stream], seed: int, total: int, start: int) -> StepBatchSampler:
        """The batch sampler of this rank. A stream's last batch of an epoch is dropped when it
        is too small to give every rank a row (two rows each for pair objectives on local batches)."""
        if not self.active:
            return StepBatchSampler(streams, seed, total, start)
        per_rank = 2 if self.needs_pairs and not self.global_kernel and len(streams) == 1 else 1
        sharded = []
        for s in streams:
            need = max(s.min_batch, per_rank * self.world)
            if s.batch_size < need:
                raise UserInputError(
                    f"a batch of {s.batch_size} rows cannot give each of the {self.world} processes "
                    f"{per_rank} row(s); use a batch size of at least {need}"
                )
            sharded.append(replace(s, min_batch=need))
        return ShardedStepBatchSampler(sharded, seed, total, start, self.rank, self.world)

    # -- models -----------------------------------------------------------------------------------
    def wrap(self, student: torch.nn.Module, objective: torch.nn.Module) -> None:
        """Wrap the student, and the objective when it has trainable parameters, in DDP."""
        if not self.active:
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        self._student = DDP(student, device_ids=ids, static_graph=True)
        if any(p.requires_grad for p in objective.parameters()):
            self._objective = DDP(objective, device_ids=ids, static_graph=True)

    def forward(self, student: torch.nn.Module, inputs: Any) -> Any:
        """``student(inputs)`` through DDP."""
        return (self._student or student)(inputs)

    def regulariser(
        self, objective: Any, features: torch.Tensor, teacher: torch.Tensor | None
    ) -> tuple[Any, dict]:
        """R and its metrics in float32, on the local batch or (``global_kernel``) the global one."""
        if not getattr(objective, "uses_teachers", True):
            return features.new_zeros(()), {}
        features = features.float()
        if self.active and self.global_kernel and teacher is not None:
            width = features.shape[1]
            local = torch.cat([dist_util.scale_grad(features, self.world), teacher.to(features.dtype)], dim=1)
            joint = dist_util.all_gather(local)
            features, teacher = joint[:, :width], joint[:, width:]
        return (self._objective or objective)(features, teacher)

    # -- resume -----------------------------------------------------------------------------------
    def sync_resume(
        self,
        start: int,
        resumed_from: int | None,
        student: torch.nn.Module,
        objective: torch.nn.Module,
        optimizer: Any,
        scheduler: Any,
        scaler: Any,
    ) -> tuple[int, int | None]:
        """Give every rank rank 0's position and state (weights, optimiser, schedule, RNG)."""
        if not self.active:
            return start, resumed_from
        from fusion_aft.training.checkpoint import rng_state, set_rng_state

        payload = None
        if self.is_main:
            payload = {"start": start, "resumed_from": resumed_from}
            if start:
                payload.update(
                    student=_cpu(student.state_dict()),
                    objective=_cpu(objective.state_dict()),
                    optimizer=_cpu(optimizer.state_dict()),
                    scheduler=scheduler.state_dict(),
                    scaler=scaler.state_dict(),
                    rng=rng_state(),
                )
        payload = dist_util.broadcast_object(payload)
        if not self.is_main and payload["start"]:
            student.load_state_dict(payload["student"])
            objective.load_state_dict(payload["objective"])
            optimizer.load_state_dict(payload["optimizer"])
            scheduler.load_state_dict(payload["scheduler"])
            if payload["scaler"]:
                scaler.load_state_dict(payload["scaler"])
            set_rng_state(payload["rng"])
        return int(payload["start"]), payload["resumed_from"]


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu(v) for v in obj)
    return obj
