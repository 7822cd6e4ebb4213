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
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import numpy as np

from scaling.data import Source
from scaling.engines import Engine, make_engine
from scaling.errors import StoreError, UsageError, check_choice
from scaling.job import Job, OnIteration
from scaling.measure import timeline
from scaling.measure.host import host_facts, versions
from scaling.results import DEFAULT_STORE, SCHEMA, append_record, new_sweep_id
from scaling.run import checkpoint
from scaling.run.checkpoint import Checkpoints

MODES = ("strong", "weak")


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
            drill = _gang_drill(eng, ds, kill_worker_at, checkpoints)
        elif kill_worker_at is not None:
            on_iteration = _drill(eng, ds, kill_worker_at, on_iteration)
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


def _drill(engine: Engine, ds, at: int, then: OnIteration | None) -> OnIteration:
    """``then``, and after iteration ``at`` (counted from 1) a worker killed, once."""
    if at < 1:
        raise UsageError(f"--kill-worker-at counts iterations from 1, got {at}")
    done = []

    def on_iteration(i: int, measure: float) -> None:
        if then is not None:
            then(i, measure)
        if i + 1 >= at and not done:
            done.append(engine.kill_worker(ds))

    return on_iteration


@contextlib.contextmanager
def _gang_drill(engine: Engine, ds, at: int, checkpoints: Checkpoints) -> Iterator[None]:
    """While the block runs (a gang), kill a worker once, when the gang's checkpoint has
    ``at`` rounds or more: the driver cannot see a gang's rounds until it ends, but it can
    see its checkpoints."""
    if at < 1:
        raise UsageError(f"--kill-worker-at counts rounds from 1, got {at}")
    pid, stop = engine.worker_pid(ds, gang=True), threading.Event()

    def watch() -> None:
        while not stop.wait(0.005):
            latest = checkpoints.latest()
            if latest is not None and latest[0] >= at:
                engine.kill_worker(ds, pid)
                return

    watcher = threading.Thread(target=watch, name="scaling-drill", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


class Clusters:
    """The engine consecutive runs share: one open at a time, kept while runs ask for the same
    engine, worker count and address, closed and started afresh when they ask for another.

    Starting a cluster costs more than many runs: 7 s for Ray, 10-20 s for Spark's JVM and
    executors on 2 cores. A run's figures come from its iterations after a warm-up one, not
    from start-up; each run gets a fresh trace (keeping the calibrated latencies) and frees
    its data. Ray and Spark hold one cluster per driver process, hence one at a time.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._engine: Engine | None = None

    def open(
        self, engine: str, workers: int, address: str | None, options: dict | None = None
    ) -> tuple[Engine, float]:
        """The engine for a run, and the seconds it took to start (0 if it was open)."""
        options = options or {}
        key = (engine, workers, address, tuple(sorted(options.items())))
        if self._engine is not None and self._key == key:
            self._engine.trace.reset()  # the last run's record is built: its calls can go
            return self._engine, 0.0
        self.close()
        t0 = time.perf_counter()
        self._engine, self._key = make_engine(engine, workers, address, **options), key
        return self._engine, time.perf_counter() - t0

    def close(self) -> None:
        engine, self._engine, self._key = self._engine, None, None
        if engine is not None:
            engine.close()

    def __enter__(self) -> Clusters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def per_iteration_by_difference(fit: Callable[[int], object], iters: int, repeat: int) -> float:
    """Seconds per iteration of an implementation that reports no per-iteration times.

    ``(T(iters + 1) - T(1)) / (m - m1)``, each T the median of ``repeat`` timed ``fit(n)``
    calls after one warm-up, and m, m1 the iterations those fits ran: the difference cancels
    set-up and final passes.

    Notes
    -----
    A fit may stop before ``n`` (scikit-learn's Lloyd stops once no label changes, whatever
    ``tol``), so the iterations come from the fitted object's ``n_iter_`` where it has one.
    Without that, a k-means that converged in 2 iterations was divided by 5 and its difference
    was noise, sometimes negative. When both fits ran the same number of iterations, there is
    no difference to take and the whole fit per iteration is the (set-up-inclusive) answer.
    """

    def timed(n: int) -> tuple[float, int]:
        walls = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            model = fit(n)
            walls.append(time.perf_counter() - t0)
        ran = int(np.max(getattr(model, "n_iter_", n)))  # LogisticRegression: one per class
        return statistics.median(walls), ran

    timed(1)
    (short, ran_short), (long, ran_long) = timed(1), timed(iters + 1)
    if ran_long > ran_short and long > short:
        return (long - short) / (ran_long - ran_short)
    return long / ran_long


def measure_baseline(
    job: Job,
    source: Source,
    config: object,
    *,
    sweep_id: str,
    repeat: int = 1,
    dtype: str = "float64",
) -> dict:
    """A record of the job's strong single-thread implementation on ``source`` (for COST)."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
    from threadpoolctl import threadpool_limits

    reference = job.baseline(source, config, dtype)
    with threadpool_limits(1):  # COST is against a single thread
        seconds = per_iteration_by_difference(reference.fit, 5, repeat)
    return {
        **_identity(job, "baseline", 1, source, config, sweep_id, "strong", started),
        "execution": "one thread",
        "status": "ok",
        "baseline": reference.name,
        "data": source.describe(),
        "timings": {"per_iteration": seconds},
        "throughput": throughput(job, config, source.rows, seconds),
    }


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """What a sweep runs: a validated grid of engines x worker counts x sizes."""

    job: Job
    config: object
    engines: tuple[str, ...]
    workers: tuple[int, ...]
    sizes: tuple[int, ...]
    mode: str = "strong"
    features: int = 16
    seed: int = 0
    repeat: int = 1
    dtype: str = "float64"
    address: str | None = None
    data: Source | None = None
    baseline: bool = True
    engine_options: tuple[tuple[str, object], ...] = ()  # (name, value): step_timeout, ...

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        if self.repeat < 1:
            raise UsageError(f"repeat must be >= 1, got {self.repeat}")
        if not self.engines or not self.workers or not self.sizes:
            raise UsageError("a sweep needs at least one engine, worker count and size")
        if min(self.workers) < 1 or min(self.sizes) < 1:
            raise UsageError("worker counts and sizes must be positive")
        if self.data is not None and self.mode == "weak":
            raise UsageError(
                "weak scaling grows the data with the workers: it needs synthetic data, not --data"
            )

    def source(self, size: int, workers: int) -> Source:
        """The data of one point: ``size`` rows (strong) or ``size`` rows per worker (weak)."""
        if self.data is not None:
            return self.data
        rows = size * workers if self.mode == "weak" else size
        return self.job.synthetic(rows, self.features, self.seed, self.config)

    def config_for(self, workers: int) -> object:
        """The job's config at ``workers``: in weak scaling a job may grow its per-iteration
        work with the workers too (SGD: the global batch)."""
        return self.job.weak_config(self.config, workers) if self.mode == "weak" else self.config

    def points(self) -> list[tuple[int, str, int, int]]:
        """(size, engine, workers, repeat) in the order they run."""
        return [
            (size, engine, w, r)
            for engine in self.engines
            for w in self.workers
            for size in self.sizes
            for r in range(self.repeat)
        ]


def sweep(
    plan: SweepPlan,
    out: str | os.PathLike = DEFAULT_STORE,
    sweep_id: str | None = None,
    progress: bool = True,
) -> tuple[str, list[dict]]:
    """Run every point of ``plan``, appending each record to the store as it finishes.

    Returns the sweep id and its records. A run that raises is recorded with
    ``status="failed"`` and its error, and the sweep goes on.
    """
    ((sweep_id, records),) = sweep_all([plan], out, progress, [sweep_id or new_sweep_id()])
    return sweep_id, records


def sweep_all(
    plans: Sequence[SweepPlan],
    out: str | os.PathLike = DEFAULT_STORE,
    progress: bool = True,
    sweep_ids: Sequence[str] | None = None,
    clusters: Clusters | None = None,
) -> list[tuple[str, list[dict]]]:
    """Run several sweeps together, each its own sweep id: the baselines first, then engine by
    engine and worker count by worker count, so that every run on one (engine, workers) shares
    one cluster (:class:`Clusters`: ``clusters``, left open, or one of its own). Returns
    (sweep id, records) per plan, in order."""
    ids = list(sweep_ids or (new_sweep_id() for _ in plans))
    done: list[list[dict]] = [[] for _ in plans]
    engines = list(dict.fromkeys(e for plan in plans for e in plan.engines))
    workers = list(dict.fromkeys(w for plan in plans for w in plan.workers))
    points = [
        (i, *point)
        for engine in engines
        for w in workers
        for i, plan in enumerate(plans)
        for point in plan.points()
        if point[1:3] == (engine, w)
    ]
    name = plans[0].job.name if len(plans) == 1 else "demo"
    with (
        progress_bar(name, len(points), enabled=progress, unit="run") as bar,
        contextlib.nullcontext(clusters) if clusters else Clusters() as clusters,
    ):
        for i, plan in enumerate(plans):
            if plan.baseline and plan.mode == "strong":
                for size in plan.sizes:
                    bar.set_postfix_str(f"{plan.job.name} baseline, {size:,} rows")
                    source = plan.source(size, 1)
                    record = measure_baseline(
                        plan.job, source, plan.config, sweep_id=ids[i], dtype=plan.dtype
                    )
                    done[i].append(append_record(out, record))
        for i, size, engine, w, repeat in points:
            plan = plans[i]
            bar.set_postfix_str(
                f"{plan.job.name} {engine} x{w}, {size:,} rows, repeat {repeat + 1}"
            )
            source, config = plan.source(size, w), plan.config_for(w)
            try:
                run = run_with_progress(
                    plan.job,
                    engine,
                    w,
                    source,
                    config,
                    progress=progress,
                    address=plan.address,
                    dtype=plan.dtype,
                    sweep_id=ids[i],
                    mode=plan.mode,
                    clusters=clusters,
                    engine_options=dict(plan.engine_options),
                )
                done[i].append(append_record(out, run.record, run.arrays, run.files))
            except StoreError:  # nothing more can be kept: stop, the records so far intact
                raise
            except Exception as e:  # recorded, and the sweep goes on
                started = datetime.now(UTC).isoformat(timespec="seconds")
                failed = _identity(plan.job, engine, w, source, config, ids[i], plan.mode, started)
                failed.update(status="failed", error=f"{type(e).__name__}: {e}")
                done[i].append(append_record(out, failed))
            bar.update(1)
    return list(zip(ids, done, strict=True))


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
