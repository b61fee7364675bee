"""Prepare the next batches in a background thread while the current one is computed.

With ``num_workers=0`` a DataLoader builds each batch in the calling thread, between two
forward passes, and the computation waits for it: in training, the student's inputs and the
bank rows (a ``pread`` per row and a float16 → float32 widening); in extraction, reading and
preparing the records for the teacher. :class:`Prefetcher` moves that work onto a thread a few
batches ahead, so it overlaps the forward (and backward) pass, which spends its time in torch
kernels that release the GIL. The batches and their order are exactly those of the wrapped
iterable: results do not change, only when the work happens.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

__all__ = ["Prefetcher"]

T = TypeVar("T")

_ITEM, _END, _ERROR = 0, 1, 2


class Prefetcher(Generic[T]):
    """Iterate ``source`` in a background thread, at most ``depth`` items ahead.

    An error raised by ``source`` is raised in the consuming thread at the position where it
    happened. Leaving the loop early (``break``, an exception, garbage collection of the
    iterator) stops the thread; no item is produced twice or skipped.

    Args:
        source: any iterable (e.g. a DataLoader with ``num_workers=0``).
        depth: items prepared ahead (>= 1).
    """

    def __init__(self, source: Iterable[T], depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.source = source
        self.depth = depth

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[T]:
        slots: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=self.depth)
        stop = threading.Event()

        def put(message: tuple[int, object]) -> bool:
            while not stop.is_set():
                try:
                    slots.put(message, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for item in self.source:
                    if not put((_ITEM, item)):
                        return
                put((_END, None))
            except BaseException as exc:  # handed to the consumer, raised there
                put((_ERROR, exc))

        thread = threading.Thread(target=produce, name="fusion-aft-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = slots.get()
                if kind == _ITEM:
                    yield value  # type: ignore[misc]
                elif kind == _END:
                    return
                else:
                    raise value  # type: ignore[misc]
        finally:
            stop.set()
            while thread.is_alive():
                try:  # unblock a producer waiting for a free slot
                    slots.get_nowait()
                except queue.Empty:
                    pass
                thread.join(timeout=0.05)
