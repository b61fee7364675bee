"""The ``fusion-aft`` command line: a thin layer that parses, calls the library and prints.

Each command group lives in its own module with a ``register(app)`` function. Errors a user can
cause (:class:`~fusion_aft.errors.UserInputError`) print as one line and exit with code 2.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys

import typer

from fusion_aft import __version__
from fusion_aft.cli._console import err_console
from fusion_aft.cli.usage import is_usage_error, shows_help, usage_error_line
from fusion_aft.errors import UserInputError

COMMAND_MODULES = (
    "teachers",
    "datasets",
    "bank",
    "extract",
    "train",
    "report",
    "export",
    "bench",
    "demo",
)

app = typer.Typer(
    name="fusion-aft",
    help="Transfer knowledge from frozen foundation models into a small student (Adaptive Feature Transfer).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fusion-aft {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"fusion_aft.cli.{_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"fusion_aft.cli.{_name}":
            raise
        continue
    _module.register(app)


#: storage failures a user fixes (disk full, read-only or forbidden folder): one line, exit code 2
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        # a typer.Exit(code) comes back as its code
        result = app(args=argv, prog_name="fusion-aft", standalone_mode=False)
    except UserInputError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRORS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        err_console.print(
            f"error: {exc.strerror or exc}{where}; free some space or choose a writable folder "
            "(--out / --cache-dir) and run the command again (training: add --resume)",
            markup=False, highlight=False, soft_wrap=True,
        )
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted", markup=False)
        return 130
    except typer.TyperException as exc:  # the parser's errors: one line, with close matches
        show = getattr(exc, "show", None)
        if show is None:
            raise
        if shows_help(exc) or not is_usage_error(exc):
            show()
        else:
            line = f"error: {usage_error_line(exc)}"
            err_console.print(line, markup=False, highlight=False, soft_wrap=True)
        return int(getattr(exc, "exit_code", 2))
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
