"""Run one job on one engine at one worker count, measured, and describe it as a record."""

from __future__ import annotations

import dataclasses
import os
import platform
import socket
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

import numpy as np

from scaling.data import Source
from scaling.engines import make_engine
from scaling.results import SCHEMA


@dataclasses.dataclass
class Run:
    """A finished run: the job's result, its record, and the arrays to save with it."""

    result: object
    record: dict
    arrays: dict[str, np.ndarray]


def run_job(
    job: ModuleType,
    engine: str,
    workers: int,
    source: Source,
    config: object,
    *,
    address: str | None = None,
    partitions: int | None = None,
    dtype: str = "float64",
    on_iteration: Callable[[int, float], None] | None = None,
) -> Run:
    """Start ``engine`` with ``workers`` workers, load ``source``, fit ``job``, and measure it.

    The cluster is started and closed here: a run owns its workers.
    """
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    with make_engine(engine, workers, address) as eng:
        startup = time.perf_counter() - t0
        ds = eng.load(source, partitions, dtype)
        result = job.fit(eng, ds, config, on_iteration=on_iteration)
        trace, engine_version = eng.trace, eng.version
    iterations = trace.summaries(job.ITERATION)
    per_iter = statistics.median(s["wall"] for s in iterations)
    record = {
        "schema": SCHEMA,
        "run_id": uuid.uuid4().hex[:12],
        "started_at": started,
        "job": job.NAME,
        "engine": engine,
        "address": address,
        "workers": workers,
        "partitions": ds.partitions,
        "rows": ds.rows,
        "features": ds.features,
        "dtype": dtype,
        "data": source.describe(),
        "config": config_dict(config),
        "timings": {
            "startup": startup,
            "load": sum(c.wall for c in trace.calls if c.op == "load"),
            "init": sum(s["wall"] for s in trace.summaries("init")),
            "per_iteration": per_iter,
            "iterations": iterations,
            "latency": trace.latency,
        },
        "split": {
            part: statistics.median(s[part] for s in iterations)
            for part in ("compute", "communication", "overhead")
        },
        "bytes_per_iteration": statistics.median(
            s["bytes_in"] + s["bytes_out"] for s in iterations
        ),
        "throughput": {"rows_per_s": ds.rows / per_iter if per_iter > 0 else None},
        "quality": job.quality(result),
        "versions": versions(engine, engine_version),
        "host": host_facts(),
    }
    return Run(result, record, job.arrays(result))


def config_dict(config: object) -> dict:
    """A config dataclass as JSON-able values (arrays described by their shape)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = f"array{list(value.shape)}" if isinstance(value, np.ndarray) else value
    return out


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
