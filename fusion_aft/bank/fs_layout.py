"""Which ranks of a multi-process extraction see the same cache folder.

Every rank writes a probe file into the cache folder and looks for the others'; ranks that see
each other's probes share a filesystem. One shared filesystem means in-place writes into one
feature file; several mean part files merged over the process group
(:mod:`fusion_aft.bank.distributed`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from fusion_aft import distributed as dist_util
from fusion_aft.errors import UserInputError

__all__ = ["FsLayout", "MergeLayout", "filesystem_layout", "layout_world"]


@dataclass(frozen=True)
class FsLayout:
    """Ranks grouped by the cache folder they see: ``groups[i]`` lists the ranks of one filesystem."""

    groups: tuple[tuple[int, ...], ...]
    rank: int

    @property
    def shared(self) -> bool:
        return len(self.groups) == 1

    @property
    def my_group(self) -> tuple[int, ...]:
        return next(g for g in self.groups if self.rank in g)

    @property
    def writers(self) -> list[int]:
        """The lowest rank of each filesystem: it creates, locks and finishes that copy of a bank."""
        return [min(g) for g in self.groups]

    @property
    def is_writer(self) -> bool:
        return self.rank == min(self.my_group)

    def writer_of(self, rank: int) -> int:
        return min(next(g for g in self.groups if rank in g))


def filesystem_layout(root: Path, shared_fs: bool | None = None) -> FsLayout:
    """Find which ranks see the same ``root`` (each writes a probe file and looks for the others').

    ``shared_fs=True`` insists on one filesystem (an error otherwise); ``False`` forces shard +
    merge with one writer per filesystem found; ``None`` decides from what is found.
    """
    me, world = dist_util.rank(), dist_util.world_size()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(
            f"cannot create the bank folder {root} ({exc.strerror or exc}); pass a writable --cache-dir"
        ) from None
    nonce = dist_util.broadcast_object(uuid.uuid4().hex if me == 0 else None)
    probe = root / f".fs-probe-{nonce}-{me}"
    probe.write_text(str(me), encoding="utf8")
    dist_util.barrier()
    seen = tuple(r for r in range(world) if (root / f".fs-probe-{nonce}-{r}").exists())
    dist_util.barrier()
    probe.unlink(missing_ok=True)
    views = dist_util.all_gather_object(seen)
    groups = tuple(sorted(set(views)))
    flat = sorted(r for g in groups for r in g)
    if flat != list(range(world)):
        raise UserInputError(
            f"the ranks disagree about which of them share the cache folder {root} (views: {views}); "
            "use a cache folder that is either on one shared filesystem or local to each node"
        )
    layout = FsLayout(groups, me)
    if shared_fs and not layout.shared:
        raise UserInputError(
            f"--shared-fs was given but the cache folder {root} is not shared by all ranks "
            f"({len(groups)} separate filesystems found); drop --shared-fs to shard and merge"
        )
    return layout


def layout_world(layout: FsLayout) -> int:
    """The number of ranks in ``layout``."""
    return sum(len(g) for g in layout.groups)


class MergeLayout(FsLayout):
    """One filesystem, handled like several: parts + merge instead of in-place writes."""

    @property
    def shared(self) -> bool:
        return False
