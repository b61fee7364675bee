"""Teachers: frozen foundation models described by cards and built by adapter kinds.

Public functions::

    fusion_aft.teachers.list(pattern=None, modality=None)   -> sorted card names
    fusion_aft.teachers.get("efficientnet-lite0?image_size=96") -> TeacherCard
    fusion_aft.teachers.load("all-minilm-l6-v2", device="cpu")  -> Teacher
    fusion_aft.teachers.available("glove-6b-50d")               -> (True, "…")
    fusion_aft.teachers.add_card("my.toml")                     -> TeacherCard
    @fusion_aft.teachers.register_teacher("name", inputs="text", width=16)

A reference is ``NAME`` or ``NAME?key=value&key=value`` with preprocessing overrides
(``image_size``, ``crop_pct``, ``mean``, ``std``, ``interpolation``, ``max_length``,
``truncation_side``, ``prompt``, ``lowercase``); ``card.ref`` is its canonical form.
"""

from __future__ import annotations

import builtins
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusion_aft import paths
from fusion_aft.errors import DuplicateNameError, UserInputError
from fusion_aft.fileio import atomic_write_bytes
from fusion_aft.teachers.card import (
    Preprocessing,
    TeacherCard,
    Weights,
    apply_overrides,
    card_from_toml,
    parse_ref,
)
from fusion_aft.teachers.catalogue import CARDS, KINDS, broken_cards, reload, use_registry_dir

if TYPE_CHECKING:
    from fusion_aft.teachers.base import Teacher

__all__ = [
    "CARDS",
    "KINDS",
    "Preprocessing",
    "Teacher",
    "TeacherCard",
    "Weights",
    "add_card",
    "available",
    "get",
    "load",
    "register_kind",
    "register_teacher",
    "reload",
    "use_registry_dir",
]

MODALITIES = ("image", "text", "image+text")


def list(pattern: str | None = None, modality: str | None = None) -> builtins.list[str]:  # noqa: A001
    """Sorted teacher names, optionally only those matching ``pattern`` and taking ``modality``.

    The pattern comes first, as in ``objectives.list``, ``students.list`` and ``datasets.list``.
    ``modality`` is ``image``, ``text`` or ``image+text``; ``image`` and ``text`` also match
    ``image+text`` teachers (they have that tower). ``pattern`` is a shell wildcard (``'dinov2*'``).
    """
    if modality is not None and modality not in MODALITIES:
        raise UserInputError(f"unknown modality '{modality}'; choose one of: {', '.join(MODALITIES)}")
    names = CARDS.names(pattern)
    if modality is None:
        return names
    return [n for n in names if modality == CARDS.get(n).inputs or modality in CARDS.get(n).inputs.split("+")]


def get(ref: str | TeacherCard, **overrides: Any) -> TeacherCard:
    """The card for ``ref`` (``NAME`` or ``NAME?key=value&…``), with overrides applied."""
    if isinstance(ref, TeacherCard):
        return apply_overrides(ref, overrides)
    name, query = parse_ref(ref)
    broken = broken_cards().get(name)
    if broken is not None and name not in CARDS:
        raise broken
    card = CARDS.get(name)
    card = apply_overrides(card, query, ref)
    return apply_overrides(card, overrides, ref)


def load(
    ref: str | TeacherCard, device: Any = "cpu", *, trust_remote_code: bool = False, **overrides: Any
) -> Teacher:
    """Build the teacher for ``ref`` on ``device`` (frozen, eval mode, float32 output).

    Keyword ``overrides`` are preprocessing overrides like those in a reference. Cards that set
    ``trust_remote_code`` load only if the caller passes ``trust_remote_code=True`` too.
    Missing weights raise :class:`~fusion_aft.errors.MissingWeightsError`, never random weights.
    """
    card = get(ref, **overrides)
    if card.trust_remote_code and not trust_remote_code:
        raise UserInputError(
            f"teacher '{card.name}' runs code from its model repository; if you trust "
            f"'{card.weights.repo or card.model}', pass trust_remote_code=True (CLI: --trust-remote-code)"
        )
    kind = KINDS.get(card.kind)
    options: dict[str, Any] = {}
    if trust_remote_code and "trust_remote_code" in inspect.signature(kind).parameters:
        options["trust_remote_code"] = True
    return kind.from_card(card, device=device, **options)


def available(ref: str | TeacherCard) -> tuple[bool, str]:
    """Whether ``ref`` can be loaded offline right now (weights present), and why or why not."""
    from fusion_aft.teachers import weights

    card = get(ref)
    if card.kind not in KINDS:
        return False, f"adapter kind '{card.kind}' is not installed"
    return weights.check(card)


def add_card(path: str | Path, registry_dir: str | Path | None = None) -> TeacherCard:
    """Validate a card file and copy it into the user's registry folder (or ``registry_dir``).

    Refuses a name that is already taken (shipped, user or plugin card).
    """
    card = card_from_toml(path)
    if card.kind not in KINDS:
        raise UserInputError(
            f"teacher card {path}: unknown kind '{card.kind}'; known: {', '.join(KINDS.names())}"
        )
    if card.name in CARDS:
        raise DuplicateNameError(
            f"teacher card {path}: a teacher named '{card.name}' already exists "
            f"({CARDS.get(card.name).source}); "
            "choose another name"
        )
    folder = (
        (Path(registry_dir) if registry_dir is not None else paths.user_registry_dir()).expanduser().resolve()
    )
    target = folder / f"{card.name}.toml"
    if target.exists():
        raise DuplicateNameError(f"teacher card {path}: {target} already exists; choose another name")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, Path(path).read_bytes())
    stored = card_from_toml(target)
    CARDS.register(stored.name, stored)
    return stored


def register_kind(name: str):
    """Decorator registering a ``Teacher`` subclass as an adapter kind usable by cards."""
    return KINDS.register(name)


def __getattr__(name: str) -> Any:
    if name == "register_teacher":
        from fusion_aft.teachers.python_teacher import register_teacher

        return register_teacher
    if name == "Teacher":
        from fusion_aft.teachers.base import Teacher

        return Teacher
    raise AttributeError(f"module 'fusion_aft.teachers' has no attribute '{name}'")
