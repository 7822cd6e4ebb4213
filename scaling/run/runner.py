"""One run, measured: a :class:`~scaling.run.spec.RunSpec` in, a record out.

A run starts its own cluster (or takes one from :class:`Clusters`), loads the data onto the
workers, fits the job and describes what happened as a record (see README, "Run records").
:func:`run_each` is ``scaling run``'s loop: one run per worker count, each kept in the store
as it finishes. Sweeps are :mod:`scaling.run.sweep`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from scaling.errors import ScalingError
from scaling.job import Job, OnIteration, RunContext
from scaling.measure import timeline
from scaling.measure.host import versions
from scaling.measure.trace import Trace
from scaling.results import append_record
from scaling.run import checkpoint
from scaling.run.checkpoint import of_run
from scaling.run.drill import drill, gang_drill
from scaling.run.pool import Clusters
from scaling.run.spec import RunSpec, config_dict, new_run_id


@dataclasses.dataclass(kw_only=True)
class Run:
    """A finished run: the job's result, its record, and the arrays and files to save with it
    (``files["trace"]``: the run's timeline as Chrome trace-event JSON)."""

    result: object
    record: dict
    arrays: dict[str, np.ndarray]
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)


def run_job(
    spec: RunSpec, *, clusters: Clusters | None = None, on_iteration: OnIteration | None = None
) -> Run:
    """Start ``spec.engine`` with ``spec.workers`` workers, load ``spec.source``, fit
    ``spec.job``, and measure it.

    The cluster is started and closed here (a run owns its workers) unless ``clusters`` is
    given: then the run takes the open one when it matches, frees its data at the end and
    leaves it open for the next run. The job's ``fit`` gets a :class:`~scaling.job.RunContext`:
    ``on_iteration`` (a progress bar), with the failure drill's kill after it where the spec
    asks for one (:meth:`Engine.kill_worker`), and the run's checkpoints.
    """
    started = datetime.now(UTC).isoformat(timespec="seconds")
    spec.check_drill()
    pool = clusters or Clusters()
    try:
        eng, startup = pool.open(spec.engine, spec.workers, spec.address, spec.engine_options)
        ds = eng.load(spec.source, spec.partitions, spec.dtype)
        drilled = contextlib.nullcontext()
        if spec.kill_worker_at is not None and spec.gang:
            drilled = gang_drill(eng, ds, spec.kill_worker_at, spec.checkpoints)
        elif spec.kill_worker_at is not None:
            on_iteration = drill(eng, ds, spec.kill_worker_at, on_iteration)
        with drilled:
            context = RunContext(on_iteration=on_iteration, checkpoints=spec.checkpoints)
            result = spec.job.fit(eng, ds, spec.config, context)
        eng.release(ds)
        trace, engine_version, dashboards = eng.trace, eng.version, eng.dashboards
    except BaseException:
        pool.close()  # a failed run may leave its workers broken: the next run starts afresh
        raise
    finally:
        if clusters is None:
            pool.close()
    if spec.checkpoints is not None:
        checkpoint.finish(spec.checkpoints)
    record = {
        **spec.identity(started),
        "status": "ok",
        "address": spec.address,
        "dashboards": {**_dashboards(spec.address), **dashboards},
        "partitions": ds.partitions,
        "dtype": spec.dtype,
        "data": spec.source.describe(),
        **measured(spec, trace, result, ds.rows, startup),
        "versions": versions(spec.engine, engine_version),
    }
    chrome = json.dumps(timeline.chrome_trace(trace, spec.job.iteration), separators=(",", ":"))
    return Run(
        result=result,
        record=record,
        arrays=spec.job.arrays(result),
        files={"trace": chrome.encode()},
    )


def measured(spec: RunSpec, trace: Trace, result: object, rows: int, startup: float) -> dict:
    """What a run's record says it measured: its timings (the median iteration after the
    warm-up), their split, bytes, throughput, the fit's quality, the median iteration's
    timeline and what failed on the way."""
    job = spec.job
    spans = [s for s in trace.spans if s.name == job.iteration]
    iterations = [s.summary() for s in spans]
    median, typical = trace.typical(job.iteration, spec.warmup)
    per_iter = typical["wall"]
    return {
        "warmup_iterations": spec.warmup if len(iterations) > spec.warmup else 0,
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
        "throughput": throughput(job, spec.config, rows, per_iter),
        "headline": job.headline,
        "quality": job.quality(result),
        "timeline": {"iteration": median, **timeline.iteration(trace, spans[median])},
        "failures": [dataclasses.asdict(f) for f in trace.failures],
    }


def _dashboards(address: str | None) -> dict[str, str]:
    """The dashboards of the cluster at ``address``, where `scaling cluster start` started it."""
    from scaling.run import cluster

    found = cluster.find(address) if address else None
    return found.dashboards if found else {}


def throughput(job: Job, config: object, rows: int, seconds: float) -> dict:
    """Units of ``job.unit`` processed per second at ``seconds`` per iteration."""
    units = job.rows_per_iteration(config, rows)
    return {"value": units / seconds if seconds > 0 else None, "unit": f"{job.unit}/s"}


def run_each(
    spec: RunSpec,
    counts: Sequence[int],
    store: str | os.PathLike,
    *,
    checkpoint_every: int = 0,
    resume: bool = False,
    on_record: Callable[[dict], None] = lambda record: None,
) -> list[dict]:
    """``scaling run``: ``spec`` at each worker count of ``counts``, one run after another,
    each record appended to ``store`` as it finishes (and given to ``on_record``).

    With ``checkpoint_every`` (or ``resume``) a run's gangs keep their state every that many
    rounds in the store; ``resume`` goes on with run ``spec.run_id`` from its latest. A run
    that fails keeping a checkpoint says how to go on from it.
    """
    records = []
    for workers in counts:
        run_id = spec.run_id if resume else new_run_id()
        one = replace(spec, workers=workers, run_id=run_id)
        if checkpoint_every or resume:
            what = {"job": spec.job.name, "config": config_dict(spec.config)}
            what.update(data=spec.source.describe(), dtype=spec.dtype)
            every = checkpoint_every or checkpoint.EVERY
            one = replace(one, checkpoints=of_run(store, run_id, what, every, resume=resume))
        try:
            run = run_with_progress(one)
        except ScalingError as e:
            if one.checkpoints and (kept := one.checkpoints.latest()):
                e.args = (
                    f"{e}; its checkpoint after round {kept[0]} is kept: add --resume {run_id} "
                    "to go on from it",
                )
            raise
        records.append(append_record(store, run.record, run.arrays, run.files))
        on_record(records[-1])
    return records


def run_with_progress(spec: RunSpec, progress: bool = True, **options) -> Run:
    """:func:`run_job` with a progress bar over its iterations (on a terminal)."""
    total = spec.job.iterations(spec.config)
    desc = f"{spec.engine} x{spec.workers}"
    with progress_bar(desc, total, enabled=progress, leave=False) as bar:
        return run_job(spec, on_iteration=lambda i, shift: bar.update(1), **options)


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
