"""The root of the command line: --help, --version, and exit codes."""

from __future__ import annotations

import subprocess
import sys

import fusion_aft


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fusion_aft.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_version() -> None:
    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"fusion-aft {fusion_aft.__version__}"


def test_help_lists_commands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    assert "Usage" in out.stdout


def test_unknown_command_is_a_usage_error() -> None:
    out = run_cli("no-such-command")
    assert out.returncode == 2


def test_public_api_is_lazy_and_complete() -> None:
    assert "objectives" in dir(fusion_aft)
    try:
        fusion_aft.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("unknown attribute did not raise")
