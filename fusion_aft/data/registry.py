"""The dataset registry: one :class:`~fusion_aft.registry.Registry` of source factories.

A leaf of :mod:`fusion_aft.data`, so that the built-in sources can register themselves without
importing the package that loads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fusion_aft.data.records import Dataset
from fusion_aft.registry import Registry

__all__ = ["SourceInfo", "register_dataset", "registry"]

registry: Registry[Callable[..., Dataset]] = Registry("dataset", entry_point_group="fusion_aft.datasets")


@dataclass(frozen=True)
class SourceInfo:
    """What ``describe()`` tells about a source without loading it.

    Args:
        fields: the input fields its records carry (``("image",)``, ``("text",)``, both).
        summary: one line.
        check: ``() -> None`` raising :class:`UserInputError` (naming the install command) when the
            source cannot load here and now; ``None`` = always available.
        cheap: loading with default options is fast enough to count classes and rows in listings.
        needs_options: options without which it cannot load (``path`` for user files).
    """

    fields: tuple[str, ...] = ()
    summary: str = ""
    check: Callable[[], None] | None = None
    cheap: bool = False
    needs_options: tuple[str, ...] = field(default_factory=tuple)


def register_dataset(
    name: str | None = None,
    factory: Callable[..., Dataset] | None = None,
    *,
    fields: tuple[str, ...] = (),
    summary: str = "",
    check: Callable[[], None] | None = None,
    cheap: bool = False,
    needs_options: tuple[str, ...] = (),
    replace: bool = False,
):
    """Register a dataset factory ``(**options) -> Dataset``; without ``factory``, a decorator."""
    if callable(name):  # used bare: @register_dataset
        name, factory = None, name
    info = SourceInfo(tuple(fields), summary, check, cheap, tuple(needs_options))

    def add(target: Callable[..., Dataset]) -> Callable[..., Dataset]:
        target.__fusion_aft_source__ = info  # type: ignore[attr-defined]
        return registry.register(name, target, replace=replace)

    return add if factory is None else add(factory)
