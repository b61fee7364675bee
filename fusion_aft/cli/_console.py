"""Consoles shared by the CLI commands (stdout for results, stderr for messages)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def emit_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout, unstyled, for scripts."""
    print(json.dumps(obj, indent=2, default=str))  # noqa: T201 - the CLI's output channel
