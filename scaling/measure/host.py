"""Facts of this host and of the process a number was measured in: the worker's id, the
machine's cores, memory and CPU, and the versions of what ran."""

from __future__ import annotations

import os
import platform
import socket
from importlib.metadata import PackageNotFoundError, version

_worker_id = (0, "")


def worker_id() -> str:
    """``host:pid`` of this worker process (threads of the local engine share one); asked on
    every task, so kept (a forked process has a pid of its own and finds it changed)."""
    global _worker_id
    pid = os.getpid()
    if _worker_id[0] != pid:
        _worker_id = (pid, f"{socket.gethostname()}:{pid}")
    return _worker_id[1]


def versions(engine: str, engine_version: str) -> dict:
    found = {"python": platform.python_version(), engine: engine_version}
    for package in ("scaling", "numpy", "scipy", "scikit-learn"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def host_facts() -> dict:
    """Cores, memory and CPU model of this machine, for comparing runs across machines."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "hostname": socket.gethostname(),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory, 1),
        "platform": platform.platform(),
    }
