"""Run jobs, measured: one run (one engine, one worker count), or a sweep over many.

A run starts its own cluster (or takes one from :class:`Clusters`), loads the data onto the
workers, fits the job and describes what happened as a record (see README, "Run records"). A
sweep runs a job over engines x worker counts x data sizes, in strong scaling (fixed total
rows) or weak scaling (fixed rows per worker), repeats each point, measures the job's
single-thread baseline for COST, and appends every record to the results store as it goes; a
run that fails is recorded as failed and the sweep goes on. Several sweeps can run together
(:func:`sweep_all`, what ``scaling demo`` does), sharing one cluster per engine and worker
count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import uuid
from datetime import UTC, datetime

import numpy as np

from scaling.data import Source
from scaling.errors import UsageError
from scaling.job import Job, OnIteration
from scaling.measure import timeline
from scaling.measure.host import host_facts, versions
from scaling.results import SCHEMA, new_sweep_id
from scaling.run import checkpoint
from scaling.run.checkpoint import Checkpoints
from scaling.run.drill import gang_drill
from scaling.run.pool import Clusters


@dataclasses.dataclass
class Run:
    """A finished run: the job's result, its record, and the arrays and files to save with it
    (``files["trace"]``: the run's timeline as Chrome trace-event JSON)."""

    result: object
    record: dict
    arrays: dict[str, np.ndarray]
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)


def run_job(
    job: Job,
    engine: str,
    workers: int,
    source: Source,
    config: object,
    *,
    address: str | None = None,
    partitions: int | None = None,
    dtype: str = "float64",
    sweep_id: str | None = None,
    mode: str = "strong",
    warmup: int = 1,
    on_iteration: OnIteration | None = None,
    clusters: Clusters | None = None,
    engine_options: dict | None = None,
    kill_worker_at: int | None = None,
    run_id: str | None = None,
    checkpoints: Checkpoints | None = None,
) -> Run:
    """Start ``engine`` with ``workers`` workers, load ``source``, fit ``job``, and measure it.

    The cluster is started and closed here (a run owns its workers) unless ``clusters`` is
    given: then the run takes the open one when it matches, frees its data at the end and
    leaves it open for the next run. The first ``warmup`` iterations (JIT compilation,
    first-touch of caches) are recorded but left out of the median time per iteration.
    ``engine_options`` go to the engine (``step_timeout``, ``max_failures``);
    ``kill_worker_at`` is the failure drill: after that iteration one worker is killed
    (:meth:`Engine.kill_worker`; in a gang, once its checkpoint has that many rounds), and
    the record says what the engine did. ``checkpoints``
    (of run ``run_id``) are where its gangs keep their state: removed when the run finishes,
    kept when it fails, to resume it from.
    """
    started = datetime.now(UTC).isoformat(timespec="seconds")
    gang = job.execution(config) != "driver"
    if kill_worker_at is not None and gang and not (checkpoints and job.resumable(config)):
        raise UsageError(
            "--kill-worker-at kills a worker between two steps of the driver's loop, or in a "
            "gang once its checkpoint has that many rounds; this run's iterations run inside "
            f"one gang call ({job.execution(config)}) that keeps no checkpoints: use "
            "--execution driver, or a gang with checkpoints (gbdt; sgd's gangs) and "
            "--checkpoint-every N"
        )
    pool = clusters or Clusters()
    try:
        eng, startup = pool.open(engine, workers, address, engine_options)
        ds = eng.load(source, partitions, dtype)
        drill = contextlib.nullcontext()
        if kill_worker_at is not None and gang:
            drill = gang_drill(eng, ds, kill_worker_at, checkpoints)
        elif kill_worker_at is not None:
            on_iteration = drill(eng, ds, kill_worker_at, on_iteration)
        eng.checkpoints = checkpoints
        try:
            with drill:
                result = job.fit(eng, ds, config, on_iteration=on_iteration)
        finally:
            eng.checkpoints = None
        eng.release(ds)
        trace, engine_version, dashboards = eng.trace, eng.version, eng.dashboards
    except BaseException:
        pool.close()  # a failed run may leave its workers broken: the next run starts afresh
        raise
    finally:
        if clusters is None:
            pool.close()
    if checkpoints is not None:
        checkpoint.finish(checkpoints)
    spans = [s for s in trace.spans if s.name == job.iteration]
    iterations = [s.summary() for s in spans]
    median, typical = trace.typical(job.iteration, warmup)
    per_iter = typical["wall"]
    record = {
        **_identity(job, engine, workers, source, config, sweep_id, mode, started, run_id),
        "status": "ok",
        "address": address,
        "dashboards": {**_dashboards(address), **dashboards},
        "partitions": ds.partitions,
        "dtype": dtype,
        "data": source.describe(),
        "warmup_iterations": warmup if len(iterations) > warmup else 0,
        "timings": {
            "startup": startup,  # 0 on a cluster an earlier run started (Clusters)
            "load": sum(c.wall for c in trace.calls if c.op == "load"),
            "init": sum(s["wall"] for s in trace.summaries("init")),
            "per_iteration": per_iter,
            "iterations": iterations,
            "latency": trace.latency,
        },
        "split": {part: typical[part] for part in ("compute", "communication", "overhead")},
        "bytes_per_iteration": typical["bytes_in"] + typical["bytes_out"],
        "sources": typical["sources"],
        "throughput": throughput(job, config, ds.rows, per_iter),
        "headline": job.headline,
        "quality": job.quality(result),
        "versions": versions(engine, engine_version),
        "timeline": {"iteration": median, **timeline.iteration(trace, spans[median])},
        "failures": [dataclasses.asdict(f) for f in trace.failures],
    }
    chrome = json.dumps(timeline.chrome_trace(trace, job.iteration), separators=(",", ":"))
    return Run(result, record, job.arrays(result), {"trace": chrome.encode()})


def _dashboards(address: str | None) -> dict[str, str]:
    """The dashboards of the cluster at ``address``, where `scaling cluster start` started it."""
    from scaling.run import cluster

    found = cluster.find(address) if address else None
    return found.dashboards if found else {}


def throughput(job: Job, config: object, rows: int, seconds: float) -> dict:
    """Units of ``job.unit`` processed per second at ``seconds`` per iteration."""
    units = job.rows_per_iteration(config, rows)
    return {"value": units / seconds if seconds > 0 else None, "unit": f"{job.unit}/s"}


def _identity(
    job: Job,
    engine: str,
    workers: int,
    source: Source,
    config: object,
    sweep_id: str | None,
    mode: str,
    started: str,
    run_id: str | None = None,
) -> dict:
    """The fields every record has, measured or failed."""
    return {
        "schema": SCHEMA,
        "sweep_id": sweep_id or new_sweep_id(),
        "run_id": run_id or new_run_id(),
        "started_at": started,
        "mode": mode,
        "job": job.name,
        "engine": engine,
        "execution": job.execution(config),
        "job_id": os.environ.get("SCALING_JOB_ID"),  # a run of `scaling submit`
        "workers": workers,
        "rows": source.rows,
        "features": source.features,
        "config": config_dict(config),
        "host": host_facts(),
    }


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def run_with_progress(
    job: Job,
    engine: str,
    workers: int,
    source: Source,
    config: object,
    progress: bool = True,
    **options,
) -> Run:
    """:func:`run_job` with a progress bar over its iterations (on a terminal)."""
    total = job.iterations(config)
    with progress_bar(f"{engine} x{workers}", total, enabled=progress, leave=False) as bar:
        return run_job(
            job,
            engine,
            workers,
            source,
            config,
            on_iteration=lambda i, shift: bar.update(1),
            **options,
        )


class progress_bar:
    """A tqdm bar on a terminal; nothing when output is not a terminal (CI logs)."""

    def __init__(self, desc: str, total: int | None, enabled: bool = True, **options) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, desc=desc, file=sys.stderr, disable=None if enabled else True, **options
        )

    def __enter__(self):
        return self.bar

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def config_dict(config: object) -> dict:
    """A config dataclass as JSON-able values (arrays described by their shape)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = f"array{list(value.shape)}" if isinstance(value, np.ndarray) else value
    return out
