"""One record's content digest: its fields (in name order) and label, hashed with type tags.

A leaf module (no package imports) so that :class:`~fusion_aft.data.records.Split` can hash a
record's fields and :mod:`fusion_aft.data.fingerprint` can fingerprint a split without either
importing the other's dependents.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np

__all__ = ["digest_fields"]


def _digest_value(h: Any, value: Any) -> None:
    """Feed one field value into ``h`` with a type tag, so "1" and 1 hash differently."""
    if isinstance(value, str):
        h.update(b"s")
        data = value.encode("utf-8")
    elif isinstance(value, bytes | bytearray):
        h.update(b"b")
        data = bytes(value)
    elif isinstance(value, bool | int | float) or value is None:
        h.update(b"n")
        data = repr(value).encode()
    elif isinstance(value, np.ndarray):
        h.update(b"a" + str(value.dtype).encode() + repr(value.shape).encode())
        data = np.ascontiguousarray(value).tobytes()
    elif hasattr(value, "tobytes") and hasattr(value, "mode") and hasattr(value, "size"):  # PIL image
        h.update(b"i" + value.mode.encode() + repr(tuple(value.size)).encode())
        data = value.tobytes()
    elif isinstance(value, list | tuple):
        h.update(b"l" + len(value).to_bytes(8, "little"))
        for item in value:
            _digest_value(h, item)
        return
    else:
        buffer = io.BytesIO()
        buffer.write(repr(value).encode())
        h.update(b"r")
        data = buffer.getvalue()
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def digest_fields(fields: dict[str, Any], label: int) -> bytes:
    """A 16-byte digest of one record's fields (in name order) and label."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(fields):
        h.update(name.encode("utf-8") + b"\0")
        _digest_value(h, fields[name])
    h.update(b"label" + int(label).to_bytes(8, "little", signed=True))
    return h.digest()
