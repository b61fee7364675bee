"""Python teachers registered in this process: card model name -> ``Teacher`` subclass or function.

A leaf module (it imports nothing of the package), so that the weight resolver and the card
catalogue can ask whether a ``python`` card's object is registered without importing the adapter
that builds it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PYTHON_OBJECTS"]

#: Registered Python teachers: card model name -> Teacher subclass or function.
PYTHON_OBJECTS: dict[str, Any] = {}
