"""The parser's usage errors (unknown flag, missing value, unknown command) as one line.

Click prints a block (a usage line, a "Try --help" line, the error); every other error of the
``fusion-aft`` command is one line, so these are too: what is wrong, the closest valid names, and
where to read more. Typer ships its own copy of click, so the exceptions are read by their
attributes, not imported.
"""

from __future__ import annotations

import difflib
from typing import Any


def _close(word: str, choices: list[str]) -> list[str]:
    return difflib.get_close_matches(word, choices, n=3, cutoff=0.6)


def is_usage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the parser's usage errors (a ``UsageError`` of any click copy)."""
    return any(cls.__name__ == "UsageError" for cls in type(exc).__mro__)


def shows_help(exc: BaseException) -> bool:
    """The "no arguments" case: the parser shows the command's help instead of an error."""
    return type(exc).__name__ == "NoArgsIsHelpError"


def usage_error_line(exc: Any) -> str:
    """One line for a usage error, naming close matches where there are any."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "fusion-aft"
    see = f"see `{where} --help`"
    if type(exc).__name__ == "NoSuchOption":
        near = list(getattr(exc, "possibilities", None) or [])
        if not near and ctx is not None:
            flags = [o for p in ctx.command.params for o in (*p.opts, *p.secondary_opts)]
            near = _close(exc.option_name, flags)
        hint = f"; close matches: {', '.join(sorted(near))}" if near else ""
        return f"{where}: unknown option {exc.option_name}{hint}; {see}"
    message = " ".join(exc.format_message().split())
    if ctx is not None and hasattr(ctx.command, "list_commands") and message.startswith("No such command"):
        name = message.split("'")[1] if message.count("'") >= 2 else ""
        near = _close(name, sorted(ctx.command.list_commands(ctx)))
        hint = f"; close matches: {', '.join(near)}" if near else ""
        return f"{where}: unknown command '{name}'{hint}; {see}"
    message = message[:1].lower() + message[1:]
    return f"{where}: {message.rstrip('.')}; {see}"
