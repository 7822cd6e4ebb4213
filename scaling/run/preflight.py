"""Checks made before any work starts, so that a run never computes what it cannot keep.

A run that fails after its work is done loses that work: a results directory that is a file,
data larger than the memory that would hold it, more workers than the machine can run. Each
check here fails at once with one line that says what to change (:class:`UsageError`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from scaling.errors import UsageError

WORKERS_PER_CORE = 4
"""The most workers an embedded cluster may have per core. Past the cores, workers wait for
one another (the curves say so); past this multiple, they mostly wait, and the embedded
clusters run out of memory or time (64 Dask workers on 2 cores: out of memory after 116 s)."""

DATA_SHARE = 0.8
"""The largest share of the memory free now that a run's rows may take (the rest: the
workers' own memory, the job's temporaries and everything else on the machine)."""


def writable(directory: str | os.PathLike, option: str = "--out") -> Path:
    """``directory``, created if missing, once a file has been written and removed in it."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".scaling-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(
            f"{option} {directory}: cannot write there ({e.strerror or e}); "
            f"give {option} a directory you can write to"
        ) from None
    return path


def fits_in_memory(rows: int, features: int, dtype: str, *, embedded: bool = True) -> None:
    """Refuse data whose rows alone would take more than :data:`DATA_SHARE` of the memory
    free on this machine, where an embedded cluster would hold them (a cluster at an address
    has memory of its own, which the engines check as they load)."""
    if not embedded:
        return
    import numpy as np
    import psutil

    need = rows * (features + 1) * np.dtype(dtype).itemsize  # the features and a label
    free = psutil.virtual_memory().available
    if need > DATA_SHARE * free:
        raise UsageError(
            f"{rows:,} rows x {features} {dtype} features need {_gb(need)} of memory for the "
            f"data alone, and this machine has {_gb(free)} free; use fewer --rows or "
            "--features, or a cluster with more memory (--address)"
        )


def worker_count(engine: str, workers: int, *, embedded: bool = True) -> None:
    """Refuse an embedded cluster of more than :data:`WORKERS_PER_CORE` workers per core
    (the local engine runs its workers one after another in-process: any count is fine)."""
    cores = os.cpu_count() or 1
    most = WORKERS_PER_CORE * cores
    if embedded and engine != "local" and workers > most:
        raise UsageError(
            f"{workers} {engine} workers on this machine's {cores} cores: at most {most} "
            f"({WORKERS_PER_CORE} per core) start here, and past {cores} they wait for cores; "
            "ask for fewer, or reach a larger cluster with --address"
        )


def _gb(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.1f} GB"
