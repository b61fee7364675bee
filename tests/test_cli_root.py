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


COMMANDS = (
    "extract", "train", "report", "export", "predict", "bench", "demo", "teachers", "datasets", "bank",
)  # fmt: skip


def test_help_lists_commands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    listed = {line.strip("│ ").split(" ")[0] for line in out.stdout.splitlines() if line.startswith("│ ")}
    missing = [c for c in COMMANDS if c not in listed]
    assert not missing, f"--help does not list {missing}:\n{out.stdout}"


def test_unknown_command_is_a_usage_error() -> None:
    out = run_cli("no-such-command")
    assert out.returncode == 2


def test_public_api_is_lazy_and_complete() -> None:
    """``import fusion_aft`` loads neither torch nor a subpackage; every public name then resolves."""
    code = (
        "import sys, fusion_aft\n"
        "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('fusion_aft.bank', "
        "'fusion_aft.training', 'fusion_aft.teachers', 'fusion_aft.objectives')))\n"
        "assert not heavy, heavy\n"
        "missing = [n for n in fusion_aft.__all__ if getattr(fusion_aft, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert set(fusion_aft.__all__) <= set(dir(fusion_aft))\n"
        "print(len(fusion_aft.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(fusion_aft.__all__) >= 15
    try:
        fusion_aft.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("unknown attribute did not raise")
