"""Datasets: named sources that turn files into splits of records with stable sample ids.

Every source is a factory ``(**options) -> Dataset`` in one :class:`~fusion_aft.registry.Registry`
(entry-point group ``fusion_aft.datasets`` for plugins). Built-in sources:

* offline, from installed packages: ``fashion_mnist``, ``rotten_tomatoes``, ``emoji``;
* the user's own files: ``image_folder``, ``csv``, ``jsonl``;
* online (torchvision / Hugging Face ``datasets``): ``cifar10``, ``cifar100``, ``flowers102``,
  ``oxford_pets``, ``dtd``, ``food101``, ``glue_*``, ``superglue_*``, ``snli_ve``, and the generic
  ``hf`` source.

Example::

    import fusion_aft
    ds = fusion_aft.datasets.load("fashion_mnist", train_size=2000, test_size=1000)
    ds.split("train")[0]          # Record(id='train-00007', fields={'image': <PIL.Image>}, label=...)

    @fusion_aft.register_dataset("my_set", fields=("text",), summary="my reviews")
    def my_set(**options) -> fusion_aft.data.Dataset: ...
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Callable
from typing import Any

from fusion_aft.data.locate import resolve_source
from fusion_aft.data.records import UNLABELLED, Dataset, Record, Split
from fusion_aft.data.registry import SourceInfo, register_dataset, registry
from fusion_aft.errors import UnknownNameError, UserInputError

__all__ = [
    "UNLABELLED",
    "Dataset",
    "Record",
    "SourceInfo",
    "Split",
    "availability",
    "describe",
    "get",
    "info",
    "load",
    "register_dataset",
    "registry",
]

log = logging.getLogger(__name__)


_BUILTINS_LOADED = False


def _ensure_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        import fusion_aft.data.sources  # noqa: F401 - registers the built-in sources


def list(pattern: str | None = None) -> builtins.list[str]:  # noqa: A001 - public API name
    """Names of the registered datasets (optionally filtered by a wildcard)."""
    _ensure_builtins()
    return registry.names(pattern)


def get(name: str) -> Callable[..., Dataset]:
    """The factory registered as ``name``, or the source reading the path ``name`` (a ``.csv``, a
    ``.jsonl``, a folder of class sub-folders); UnknownNameError lists close matches."""
    _ensure_builtins()
    try:
        return registry.get(resolve_source(name, {}, name in registry)[0])
    except UnknownNameError as exc:
        hint = "or give a path: a .csv, a .jsonl or a folder of class sub-folders"
        raise UnknownNameError(f"{exc}; {hint}") from None


def info(name: str) -> SourceInfo:
    """The :class:`SourceInfo` of ``name`` (empty for plugins that registered none)."""
    return getattr(get(name), "__fusion_aft_source__", SourceInfo())


def load(name: str, **options: Any) -> Dataset:
    """Load dataset ``name`` with source ``options``; the result is checked (ids, labels, splits).

    ``name`` may be a path: ``load("reviews.csv")`` is ``load("csv", path="reviews.csv")``; a
    ``.jsonl`` file and a folder of class sub-folders (``image_folder``) work alike.
    """
    from fusion_aft.data.validate import check_dataset

    _ensure_builtins()
    name, options = resolve_source(name, options, name in registry)
    factory = get(name)
    try:
        dataset = factory(**options)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise UserInputError(f"dataset '{name}': {_bad_option(factory, exc)}") from None
        raise
    except UserInputError as exc:
        raise _naming_the_flag(exc, options) from None
    if not isinstance(dataset, Dataset):
        raise UserInputError(f"dataset source '{name}' returned {type(dataset).__name__}, not a Dataset")
    dataset.meta.setdefault("source", name)
    dataset.meta.setdefault("options", dict(options))
    return check_dataset(dataset)


def _naming_the_flag(exc: UserInputError, options: dict[str, Any]) -> UserInputError:
    """``exc``, naming the ``--dataset-option`` that set the value it complains about."""
    message = str(exc)
    named = [k for k in options if k != "path" and re.search(rf"\b{re.escape(k)}\b", message)]
    if not named or "--dataset-option" in message:
        return exc
    hint = ", ".join(f"--dataset-option {k}=..." for k in named)
    try:
        return type(exc)(f"{message} (set by {hint})")
    except TypeError:
        return UserInputError(f"{message} (set by {hint})")


def _bad_option(factory: Callable[..., Dataset], exc: TypeError) -> str:
    """The unknown option and the ones the source takes, naming the flag that sets them."""
    import inspect

    bad = str(exc).rsplit("argument", 1)[-1].strip(" '\"")
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        params = []
    known = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes = f"; it takes: {', '.join(known)}" if known else ""
    return f"no option '{bad}' (--dataset-option {bad}=...){takes}"


def availability(name: str) -> tuple[bool, str]:
    """``(available, reason)``: whether ``name`` can load here now without a download."""
    source = info(name)
    if source.needs_options:
        return True, "needs " + ", ".join(f"{o}=..." for o in source.needs_options)
    if source.check is None:
        return True, ""
    try:
        source.check()
    except UserInputError as exc:
        return False, str(exc)
    return True, ""


def describe(name: str | None = None, *, counts: bool = True) -> builtins.list[dict[str, Any]]:
    """One dict per dataset: name, fields, summary, availability, and (when cheap) classes/sizes."""
    names = [name] if name else list()
    rows = []
    for n in names:
        source = info(n)
        ok, reason = availability(n)
        row: dict[str, Any] = {
            "name": n,
            "fields": builtins.list(source.fields),
            "summary": source.summary,
            "available": ok,
            "reason": reason,
            "classes": None,
            "splits": None,
        }
        if ok and counts and source.cheap and not source.needs_options:
            try:
                ds = load(n)
            except UserInputError as exc:
                row.update(available=False, reason=str(exc))
            else:
                row["classes"] = ds.classes
                row["splits"] = {k: len(v) for k, v in ds.splits.items()}
        rows.append(row)
    return rows
