"""The two teacher registries and how they are filled.

* :data:`KINDS`: adapter kinds (``Teacher`` subclasses) by name: ``timm``, ``open_clip``,
  ``sentence_transformers``, ``transformers``, ``glove``, ``python``.
* :data:`CARDS`: teacher cards by name, from the shipped catalogue (``registry/teachers``), the
  user's folder (``fusion_aft.paths.user_registry_dir()``, env ``FUSION_AFT_REGISTRY``), extra
  folders (``use_registry_dir``), Python teachers (``register_teacher``) and plugins.

Both fill lazily on first lookup, so importing fusion-aft costs nothing. Plugins use the
entry-point group ``fusion_aft.teachers``; each entry point may load as

* a module: importing it registers whatever it decorates;
* a ``Teacher`` subclass: registered as an adapter kind under the entry point's name;
* a ``TeacherCard`` or a dict: registered as a card;
* a folder or ``.toml`` path (``str``/``Path``/importlib resource): the cards in it;
* a callable marked ``__fusion_aft_plugin__ = True``: called with :data:`CARDS`.

A malformed card file found while scanning a folder does not break the other teachers: it is
remembered, and looking its name up raises its error (naming the file and the key).
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from fusion_aft import paths
from fusion_aft.errors import UserInputError
from fusion_aft.registry import Registry
from fusion_aft.teachers.card import TeacherCard, card_from_dict, card_from_toml

log = logging.getLogger(__name__)

__all__ = ["CARDS", "ENTRY_POINT_GROUP", "KINDS", "broken_cards", "load_folder", "reload", "use_registry_dir"]

ENTRY_POINT_GROUP = "fusion_aft.teachers"
BUILTIN_KIND_MODULES = (
    "fusion_aft.teachers.timm_teacher",
    "fusion_aft.teachers.clip_teacher",
    "fusion_aft.teachers.st_teacher",
    "fusion_aft.teachers.hf_teacher",
    "fusion_aft.teachers.glove_teacher",
    "fusion_aft.teachers.python_teacher",
    "fusion_aft.teachers.onnx_bert",
)

_state: dict[str, Any] = {"filled": False, "folders": set(), "broken": {}}


class _LazyRegistry(Registry):
    """A :class:`Registry` that runs the catalogue discovery before its first lookup."""

    def _load_plugins(self) -> None:
        _fill()


KINDS: Registry[Any] = _LazyRegistry("teacher kind")
CARDS: Registry[TeacherCard] = _LazyRegistry("teacher")


def builtin_kind(name: str):
    """Decorator used by the built-in adapter modules (no discovery triggered)."""

    def add(cls: Any) -> Any:
        Registry.register(KINDS, name, cls)
        return cls

    return add


def _fill() -> None:
    if _state["filled"]:
        return
    _state["filled"] = True
    for module in BUILTIN_KIND_MODULES:
        importlib.import_module(module)
    load_folder(paths.package_catalogue_dir() / "teachers")
    user = paths.user_registry_dir()
    if user.is_dir():
        load_folder(user)
    _load_entry_points()


def load_folder(folder: str | Path, strict: bool = False) -> list[str]:
    """Register every ``*.toml`` card in ``folder`` (once per folder); returns the names added.

    With ``strict``, the first malformed card raises; otherwise it is recorded and reported when
    its name is looked up.
    """
    folder = Path(folder).expanduser().resolve()
    if folder in _state["folders"]:
        return []
    _state["folders"].add(folder)
    added = []
    for path in sorted(folder.glob("*.toml")):
        try:
            card = card_from_toml(path)
        except UserInputError as exc:
            if strict:
                raise
            log.warning("%s", exc)
            _state["broken"][path.stem] = exc
            continue
        existing = CARDS._entries.get(card.name)
        if existing is not None and existing.source == card.source:
            continue  # the same file, added earlier (``add_card``)
        Registry.register(CARDS, card.name, card)
        added.append(card.name)
    return added


def use_registry_dir(folder: str | Path) -> list[str]:
    """Add the cards of an extra folder (``--registry DIR``); the folder must exist."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserInputError(f"registry folder {folder} does not exist; create it or pass another --registry")
    _fill()
    return load_folder(folder)


def broken_cards() -> dict[str, UserInputError]:
    """Card files that failed validation while scanning folders, by file stem."""
    _fill()
    return dict(_state["broken"])


def reload() -> None:
    """Forget every card and plugin and scan again (after changing ``FUSION_AFT_REGISTRY``)."""
    from fusion_aft.teachers.python_objects import PYTHON_OBJECTS

    python_cards = {n: c for n, c in CARDS._entries.items() if c.kind == "python" and n in PYTHON_OBJECTS}
    CARDS._entries.clear()
    CARDS._entries.update(python_cards)
    _state.update(filled=False, folders=set(), broken={})
    _fill()


def _load_entry_points() -> None:
    from fusion_aft.teachers.base import Teacher

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            _register_plugin(ep.name, obj, Teacher)
        except Exception as exc:  # one broken plugin must not break the others
            log.warning("could not load teacher plugin '%s' (%s): %s", ep.name, ep.value, exc)


def _register_plugin(name: str, obj: Any, teacher_base: type) -> None:
    if type(obj).__name__ == "module":
        return
    if isinstance(obj, type) and issubclass(obj, teacher_base):
        if name not in KINDS._entries:
            Registry.register(KINDS, name, obj)
        return
    if isinstance(obj, TeacherCard):
        Registry.register(CARDS, obj.name, obj)
        return
    if isinstance(obj, dict):
        card = card_from_dict(obj, f"entry point '{name}'")
        Registry.register(CARDS, card.name, card)
        return
    if callable(obj) and getattr(obj, "__fusion_aft_plugin__", False):
        obj(CARDS)
        return
    if isinstance(obj, str | Path) or hasattr(obj, "joinpath"):
        path = Path(str(obj))
        if path.is_dir():
            load_folder(path, strict=True)
        else:
            card = card_from_toml(path)
            Registry.register(CARDS, card.name, card)
        return
    raise TypeError(
        f"entry point '{name}' gives a {type(obj).__name__}, not a module, Teacher class, card or folder"
    )
