"""Sweeps: a job over engines x worker counts x data sizes, in strong scaling (fixed total rows)
or weak scaling (fixed rows per worker), each point repeated, the job's single-thread baseline
timed for COST, and every record appended to the store as it goes; a run that fails is recorded
as failed and the sweep goes on. Several sweeps can run together (:func:`sweep_all`, what
``scaling demo`` does), sharing one cluster per engine and worker count (:class:`Clusters`)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np

from scaling.data import Source
from scaling.engines import Engine
from scaling.errors import StoreError, UsageError, check_choice
from scaling.job import Job
from scaling.results import DEFAULT_STORE, append_record, new_sweep_id
from scaling.run.pool import Clusters
from scaling.run.runner import progress_bar, run_with_progress, throughput
from scaling.run.spec import MODES, RunSpec


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
        **RunSpec(
            job=job, engine="baseline", workers=1, source=source, config=config, sweep_id=sweep_id
        ).identity(started),
        "execution": "one thread",
        "status": "ok",
        "baseline": reference.name,
        "data": source.describe(),
        "timings": {"per_iteration": seconds},
        "throughput": throughput(job, config, source.rows, seconds),
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
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
    emulation: dict | None = None  # the scale model the cluster at ``address`` runs on

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
    between: Callable[[Engine], object] | None = None,
) -> list[tuple[str, list[dict]]]:
    """Run several sweeps together, each its own sweep id: the baselines first, then engine by
    engine and worker count by worker count, so that every run on one (engine, workers) shares
    one cluster (:class:`Clusters`: ``clusters``, left open, or one of its own). ``between``
    is called with each cluster after its last run, before it is closed (the demo calibrates
    there). Returns (sweep id, records) per plan, in order."""
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
        for n, (i, size, engine, w, repeat) in enumerate(points):
            plan = plans[i]
            bar.set_postfix_str(
                f"{plan.job.name} {engine} x{w}, {size:,} rows, repeat {repeat + 1}"
            )
            source, config = plan.source(size, w), plan.config_for(w)
            try:
                spec = RunSpec(
                    job=plan.job, engine=engine, workers=w, source=source, config=config,
                    address=plan.address, dtype=plan.dtype, sweep_id=ids[i], mode=plan.mode,
                    emulation=plan.emulation, **dict(plan.engine_options),
                )  # fmt: skip
                run = run_with_progress(spec, progress=progress, clusters=clusters)
                done[i].append(append_record(out, run.record, run.arrays, run.files))
            except StoreError:  # nothing more can be kept: stop, the records so far intact
                raise
            except Exception as e:  # recorded, and the sweep goes on
                started = datetime.now(UTC).isoformat(timespec="seconds")
                failed = RunSpec(
                    job=plan.job, engine=engine, workers=w, source=source, config=config,
                    sweep_id=ids[i], mode=plan.mode, emulation=plan.emulation,
                ).identity(started)  # fmt: skip
                failed.update(status="failed", error=f"{type(e).__name__}: {e}")
                done[i].append(append_record(out, failed))
            bar.update(1)
            last = n + 1 == len(points) or points[n + 1][2:4] != (engine, w)
            if between is not None and last and (held := clusters.held(engine, w)):
                bar.set_postfix_str(f"{engine} x{w}: calibrating")
                between(held)
    return list(zip(ids, done, strict=True))
