"""What tests use from the package: the worker-side functions of the engine contract suite,
and :func:`check_job`, the Job contract's conformance checks, which every job passes.

The worker-side functions live in the package, not in ``tests/``, because workers import the
functions they run by module name and test modules are not importable in worker processes.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

import numpy as np

from scaling.collectives.tcp import allgather
from scaling.data import Part
from scaling.engines.worker import GangContext

if TYPE_CHECKING:
    from scaling.job import Job


def shape(part: Part) -> tuple:
    return part.start, part.X.shape, part.X.dtype.str


def where(part: Part) -> tuple[int, int]:
    """Process and array identity: equal across calls when the partition stays cached."""
    return os.getpid(), id(part.X)


def column_sums(part: Part, scale: float) -> np.ndarray:
    return np.concatenate([part.X.sum(axis=0), [len(part.X)]]) * scale


def add(a, b):
    return a + b


def blas_threads(part: Part) -> int:
    from threadpoolctl import threadpool_info

    return max(p["num_threads"] for p in threadpool_info())


def total(part: Part, value: np.ndarray) -> float:
    return float(np.asarray(value).sum())


def fail(part: Part) -> None:
    raise ValueError(f"bad partition at row {part.start}")


def die(part: Part) -> None:
    """Kill the worker process, as an out-of-memory kill would."""
    os._exit(1)


def gather_rows(ctx: GangContext, parts: list[Part], tag: str) -> tuple:
    ranks = allgather(ctx, (ctx.rank, sum(len(p.X) for p in parts)), timeout=60)
    return ctx.rank, ctx.world, tag, ranks


def scaled_sum(part: Part, scale: float) -> float:
    return float(part.X.sum()) * scale


def larger(a, b):
    return max(a, b)


def reduce_with(steps, combine) -> float:
    """A loop of one map-reduce (:func:`scaling.execution.execute`), summing or not."""
    return steps.map_reduce(scaled_sum, combine, 1.0)


# ---------------------------------------------------------------- the Job contract's checks


def check_job(job: Job, config: object | None = None, rows: int = 2_000, features: int = 8) -> None:
    """Check that ``job`` keeps the Job contract, as scikit-learn's ``check_estimator`` checks
    an estimator: raises an AssertionError that names the job and what it broke.

    What a job's own tests cannot see and the rest of the program relies on: it is registered
    under its name; its config is a frozen dataclass whose every field has a default (one CLI
    option each), and its demo config and variants are configs; its declared steps (``explain``)
    name functions that exist, at 1, 2 and 4 workers, for every variant; its counts are
    positive; its ``interview`` module, where it has one, answers; its synthetic data has the
    shape asked for; its baseline runs; a fit on the local engine (``config``: default the
    job's default) times each iteration as a trace span named ``job.iteration``, tells the run's
    context of each, and reports a JSON quality that holds its headline; and its ``timed``
    config runs every iteration it asks for (the cost model's samples).
    """
    import importlib
    import importlib.util
    import json

    from jobs import get_job
    from scaling.engines import make_engine
    from scaling.job import RunContext
    from scaling.model.steps import Step, function_of

    def check(ok: bool, what: str) -> None:
        assert ok, f"job {job.name!r}: {what}"

    check(get_job(job.name) is job, "get_job(job.name) is not this job: register it in jobs.JOBS")
    for attr in ("name", "iteration", "headline", "unit"):
        check(isinstance(getattr(job, attr), str) and getattr(job, attr), f"{attr} is empty")
    cls = job.config
    check(dataclasses.is_dataclass(cls), "config is not a dataclass")
    check(cls.__dataclass_params__.frozen, "config is not frozen")
    missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    check(not missing, f"config fields {missing} have no default (each is a CLI option)")
    check(isinstance(job.demo_config, cls), "demo_config is not a config")
    config = cls() if config is None else config
    variants = {name: dataclasses.replace(config, **opts) for name, opts in job.variants.items()}
    for name, variant in {"default": config, **variants}.items():
        execution = job.execution(variant)
        check(isinstance(execution, str) and execution, f"{name}: no execution")
        for workers in (1, 2, 4):
            steps = job.explain(100_000, features, workers, variant)
            check(bool(steps) and all(isinstance(s, Step) for s in steps), "explain: no Steps")
            kinds = [s.kind for s in steps]
            check("map" in kinds and set(kinds) <= {"map", "combine", "update"}, f"kinds {kinds}")
            for s in steps:
                check(callable(function_of(job.name, s.function)), f"{s.function} names nothing")
                check(s.flops >= 0 and s.sends >= 0, f"{s.function}: negative work or bytes")
    for what, n in (
        ("iterations", job.iterations(config)),
        ("parameters", job.parameters(features, config)),
        ("rows_per_iteration", job.rows_per_iteration(config, rows)),
    ):
        check(isinstance(n, int) and n >= 1, f"{what} is {n!r}, not a positive integer")
    check(isinstance(job.weak_config(config, 2), cls), "weak_config does not give a config")
    timed = job.timed(config, 3)
    check(isinstance(timed, cls) and job.iterations(timed) == 3, "timed(config, 3) is not 3")
    check(isinstance(job.resumable(config), bool), "resumable is not a bool")
    package = type(job).__module__
    if importlib.util.find_spec(f"{package}.interview") is not None:
        answers = getattr(importlib.import_module(f"{package}.interview"), "answers", None)
        check(callable(answers), f"{package}.interview has no answers(ask)")

    source = job.synthetic(rows, features, 0, config)
    check((source.rows, source.features) == (rows, features), "synthetic has another shape")
    baseline = job.baseline(source, config)
    check(bool(baseline.name) and baseline.fit(1) is not None, "the baseline does not fit")
    told: list[int] = []
    with make_engine("local", 2) as engine:
        ds = engine.load(source)
        context = RunContext(on_iteration=lambda i, measure: told.append(i))
        result = job.fit(engine, ds, config, context)
        spans = [s for s in engine.trace.spans if s.name == job.iteration]
        engine.trace.reset()
        job.fit(engine, ds, timed)  # the cost model's samples time each of these iterations
        timed_spans = sum(s.name == job.iteration for s in engine.trace.spans)
    check(timed_spans >= 3, f"timed(config, 3) stopped after {timed_spans} iterations")
    check(1 <= len(spans) <= job.iterations(config), f"{len(spans)} {job.iteration!r} spans")
    # one span per pass over the data (an L-BFGS line search may make several an iteration)
    check(told == list(range(len(told))), f"the context was told of iterations {told[:8]}")
    check(1 <= len(told) <= len(spans), f"told of {len(told)} iterations, {len(spans)} spans")
    quality = job.quality(result)
    check(job.headline in quality, f"quality has no {job.headline!r}")
    json.dumps(quality)  # a record holds it
    arrays = job.arrays(result)
    check(all(isinstance(a, np.ndarray) for a in arrays.values()), "arrays are not arrays")
