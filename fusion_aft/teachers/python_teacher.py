"""The ``python`` adapter kind: a user's own class or function registered in-process.

Example::

    import fusion_aft, torch

    @fusion_aft.register_teacher("char-counts", inputs="text", width=2)
    def char_counts(texts):                      # a batch of raw inputs -> [B, width]
        return torch.tensor([[len(t), t.count(" ")] for t in texts], dtype=torch.float32)

    fusion_aft.teachers.load("char-counts").encode(["a b", "abc"])

A ``Teacher`` subclass can be registered the same way; it is built as ``cls(card, device=...)``.
Cards cannot name Python objects to import (cards never run code): the object must be registered
by ``register_teacher`` (or by a plugin's entry point) in the running process.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fusion_aft.data.records import Record
from fusion_aft.errors import UserInputError
from fusion_aft.teachers.base import Teacher
from fusion_aft.teachers.card import TeacherCard, card_from_dict
from fusion_aft.teachers.catalogue import CARDS, builtin_kind
from fusion_aft.teachers.digest import combine
from fusion_aft.teachers.python_objects import PYTHON_OBJECTS

__all__ = ["PYTHON_OBJECTS", "FunctionTeacher", "register_teacher"]



def register_teacher(
    obj: Any = None,
    /,
    name: str | None = None,
    *,
    inputs: str | None = None,
    width: int | None = None,
    licence: str = "unspecified",
    parameters: int = 0,
    description: str = "",
    replace: bool = False,
    **card_fields: Any,
) -> Any:
    """Register a Python teacher (a ``Teacher`` subclass or a batch function) with a card.

    Usable bare on a class that sets ``width``/``inputs`` attributes (``@register_teacher``), or
    with arguments (``@register_teacher("name", inputs="text", width=16)``). A function receives a
    list of raw inputs (strings, PIL images, or ``{"image", "text"}`` dicts) and returns an array
    or tensor of shape ``[B, width]``. Returns the object unchanged.
    """
    if isinstance(obj, str):  # @register_teacher("name", ...)
        return lambda target: register_teacher(
            target,
            obj,
            inputs=inputs,
            width=width,
            licence=licence,
            parameters=parameters,
            description=description,
            replace=replace,
            **card_fields,
        )
    if obj is None:
        return lambda target: register_teacher(
            target,
            name,
            inputs=inputs,
            width=width,
            licence=licence,
            parameters=parameters,
            description=description,
            replace=replace,
            **card_fields,
        )
    key = name or getattr(obj, "name", None) or obj.__name__.replace("_", "-").lower()
    width = width if width is not None else getattr(obj, "width", None)
    if width is None:
        raise UserInputError(f"register_teacher('{key}'): pass width=<output width>")
    if not (isinstance(obj, type) and issubclass(obj, Teacher)) and not callable(obj):
        raise UserInputError(f"register_teacher('{key}'): expected a Teacher subclass or a function")
    card = card_from_dict(
        {
            "name": key,
            "kind": "python",
            "model": key,
            "inputs": inputs or getattr(obj, "inputs", "text"),
            "width": int(width),
            "parameters": parameters,
            "licence": licence,
            "description": description or (inspect.getdoc(obj) or "").split("\n")[0],
            "weights": {"source": "python"},
            **card_fields,
        },
        source=f"python {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', key)}",
    )
    len(CARDS)  # fill the catalogue first, so a clash with a shipped card is caught here
    CARDS.register(key, card, replace=replace)
    PYTHON_OBJECTS[key] = obj
    return obj


def _raw(record: Record, inputs: str) -> Any:
    if inputs == "image+text":
        return {"image": record.fields.get("image"), "text": record.fields.get("text")}
    if inputs not in record.fields:
        raise UserInputError(f"record '{record.id}' has no '{inputs}' field")
    return record.fields[inputs]


@builtin_kind("python")
class FunctionTeacher(Teacher):
    """Wraps a registered batch function; Teacher subclasses are built directly (``from_card``)."""

    def __init__(
        self, card: TeacherCard, device: str | torch.device = "cpu", fn: Callable | None = None
    ) -> None:
        self.spec = card
        self.device = torch.device(device)
        self.fn = fn if fn is not None else PYTHON_OBJECTS[card.model]

    @classmethod
    def from_card(cls, card: TeacherCard, device: str | torch.device = "cpu", **options: Any) -> Teacher:
        obj = PYTHON_OBJECTS.get(card.model)
        if obj is None:
            from fusion_aft.errors import MissingWeightsError

            raise MissingWeightsError(
                f"teacher '{card.name}' is a Python teacher that is not registered in this process; "
                "import the module that applies @fusion_aft.register_teacher to it"
            )
        if isinstance(obj, type) and issubclass(obj, Teacher):
            return obj(card, device=device, **options)
        return cls(card, device=device, fn=obj)

    def prepare(self, record: Record) -> Any:
        return _raw(record, self.spec.inputs)

    def collate(self, items: Any) -> list[Any]:
        return list(items)

    def forward_batch(self, batch: list[Any]) -> torch.Tensor:
        with torch.no_grad():
            out = self.fn(batch)
        out = torch.as_tensor(np.asarray(out) if not isinstance(out, torch.Tensor) else out).detach()
        if out.ndim != 2 or out.shape[0] != len(batch):
            raise UserInputError(
                f"teacher '{self.name}' returned shape {tuple(out.shape)} for {len(batch)} inputs; "
                f"expected ({len(batch)}, {self.dim})"
            )
        return out.to(self.device, dtype=torch.float32)

    def weights_digest(self) -> str:
        try:
            source = inspect.getsource(self.fn)
        except (OSError, TypeError):
            source = repr(self.fn)
        return combine(
            ["python", getattr(self.fn, "__module__", ""), getattr(self.fn, "__qualname__", ""), source]
        )
