"""Facts about the machine a job runs on, recorded with benchmark results and used to size work."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, load, torch threads and the accelerator (if any)."""
    import torch

    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024**2, 1)
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable_cores(),
        "memory_gib": mem,
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def environment() -> dict[str, Any]:
    """Machine and library versions recorded with benchmark results (one line for the machine)."""
    import torch

    from fusion_aft.versions import library_versions

    versions = library_versions()
    versions.pop("python", None)  # recorded on its own below
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "machine": f"{cpu_model()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}"
        + (f", GPU {gpu}" if gpu else ", no GPU"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }
