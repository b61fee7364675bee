"""One generic registry, used for teachers, students, objectives and datasets.

A :class:`Registry` maps names to factories (classes or functions). Entries are added with a
decorator or a call; a duplicate name is an error; an unknown name is an error that lists the
close matches. Third-party packages add entries through a named entry-point group, discovered
lazily on first lookup.

Example::

    objectives = Registry("objective")

    @objectives.register("aft")
    class AFT(nn.Module): ...

    objectives.get("aft")        # -> AFT
    objectives.get("atf")        # UnknownNameError: unknown objective 'atf'; close matches: aft
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar, overload

from fusion_aft.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")
log = logging.getLogger(__name__)

__all__ = ["Registry", "close_matches"]


def close_matches(name: str, candidates: list[str], n: int = 5) -> list[str]:
    """Names in ``candidates`` that look like ``name`` (by edit similarity or as a substring)."""
    lowered = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    subs = [c for c in lowered if name.lower() in c and c not in found]
    return [lowered[c] for c in (found + subs)[:n]]


class Registry(Generic[T]):
    """A named table of factories of one kind (``kind`` is used in error messages).

    Args:
        kind: what the entries are, singular ("teacher", "objective", ...).
        entry_point_group: an importlib entry-point group scanned once, on first lookup. Each
            entry point is loaded; loading it is expected to register entries (a module whose
            import registers, or a callable taking this registry). An entry point that is itself
            a factory and not yet registered is registered under the entry point's name.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None, *, list_all: bool = False) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        #: an unknown name's error lists every registered name (after the close matches)
        self.list_all = list_all
        self._entries: dict[str, T] = {}
        self._plugins_loaded = entry_point_group is None

    # -- adding -------------------------------------------------------------------------------
    @overload
    def register(self, name: str | None = None) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str | None, obj: T) -> T: ...

    def register(self, name: str | None = None, obj: T | None = None, *, replace: bool = False):
        """Register ``obj`` under ``name``; without ``obj``, return a decorator.

        ``name`` defaults to the object's ``__name__``. ``replace=True`` allows re-registering a
        name on purpose (never implied).
        """

        def add(target: T) -> T:
            key = name or getattr(target, "__name__", None)
            if not key:
                raise ValueError(f"cannot register an unnamed {self.kind}; pass a name")
            if key in self._entries and not replace and self._entries[key] is not target:
                raise DuplicateNameError(
                    f"{self.kind} '{key}' is already registered "
                    f"(by {_describe(self._entries[key])}); choose another name"
                )
            self._entries[key] = target
            return target

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and plugin reloads); unknown names are an error."""
        self.get(name)
        del self._entries[name]

    # -- looking up ---------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The entry called ``name``, or :class:`UnknownNameError` listing close matches."""
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise self.unknown(name) from None

    def unknown(self, name: str) -> UnknownNameError:
        """The error for an unknown ``name``, listing close matches (or all names if few)."""
        names = sorted(self._entries)
        near = close_matches(name, names)
        if self.list_all:
            hint = f"registered {self.kind}s: {', '.join(names) or 'none'}"
            if near:
                hint = f"close matches: {', '.join(near)}; {hint}"
        elif near:
            hint = "close matches: " + ", ".join(near)
        elif len(names) <= 12:
            hint = "known: " + (", ".join(names) or "none")
        else:
            hint = f"{len(names)} known; list them with `fusion-aft {self.kind}s list`"
        return UnknownNameError(f"unknown {self.kind} '{name}'; {hint}")

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted names, optionally filtered by a shell wildcard (``'aft*'``)."""
        self._load_plugins()
        names = sorted(self._entries)
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"

    # -- plugins ------------------------------------------------------------------------------
    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken plugin must not break the whole tool
                log.warning("could not load %s plugin '%s' (%s): %s", self.kind, ep.name, ep.value, exc)
                continue
            if callable(loaded) and getattr(loaded, "__fusion_aft_plugin__", False):
                loaded(self)
            elif ep.name not in self._entries and not _is_module(loaded):
                self.register(ep.name, loaded)

    def reload_plugins(self) -> None:
        """Scan the entry-point group again (after installing a plugin in a running process)."""
        self._plugins_loaded = self.entry_point_group is None
        self._load_plugins()


def _is_module(obj: Any) -> bool:
    return type(obj).__name__ == "module"


def _describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
