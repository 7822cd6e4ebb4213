"""Compute timed at the shape asked about, as Ernest samples (Venkataraman et al., NSDI 2016):
the job's own iteration on samples of the rows, in-process on one core.

A worker's compute is its share of one iteration: its map kernels on the rows and columns it
holds (:meth:`scaling.job.Job.partition`). The cost model priced it as ``fixed + factor x
roofline`` fitted on runs of other shapes, and that line does not carry to a third (logistic
regression at 128 features: 62-81% off, the "fitted" column of
``benchmarks/results/costmodel.md``), nor across a cache: logistic regression's per-row time
grew 1.6x between 100,000 and 1,000,000 rows of 32 features on this host. So the job's
iteration is timed at the shape's own options on what a worker holds at 1, 2, 4, ... workers
(:func:`sizes`: its share of the rows; a feature-parallel tree's share of the columns and
every row, whose routing per split does not shrink with p; ADMM's p shares side by side, its
local solves' work depending on p), and the model interpolates between them
(:func:`scaling.model.costmodel.fit_samples`).

Timings are kept per host, job, options and features in ``<store>/calibration/samples.json``
(atomically), so a second ``scaling predict`` answers without running anything.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

from scaling.measure.host import host_facts
from scaling.results import atomic_write

SAMPLE_BYTES = 512 << 20
"""The largest sample's rows, in bytes: past every cache of the host (this one's L3 holds
300 MiB; logistic regression's per-row time grew 1.6x from 24 MiB of rows to 488), beyond
which each row costs the same and a line carries the samples to any size."""

MIN_ROWS = 8_192
"""The smallest sample: a worker's share of the rows at the widest counts worth asking about."""

ITERATIONS = 8
"""Iterations per fit of a sample; the median of those after the first is the fit's time."""

ROUNDS = 3
"""Fits per sample, the sizes taking turns; the median fit is its time, the quartiles of all
their iterations its spread. One round on this shared host timed the largest sample 1.5x
slower than another (other tenants in the L3 cache it spills into)."""


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One iteration's compute (seconds) on ``rows`` x ``features`` on one core (of
    ``partitions`` of them run side by side there, its share)."""

    rows: int
    features: int
    compute: float
    spread: float = 0.0  # of its iterations' compute: quartiles apart over twice the median
    partitions: int = 1


class Shape(NamedTuple):
    """A sample's shape: ``partitions`` of ``rows`` x ``features`` each."""

    rows: int
    features: int
    partitions: int = 1


def sizes(job, config, rows: int, features: int) -> list[Shape]:
    """The sample shapes for ``rows`` x ``features``: what one worker holds at 1, 2, 4, ...
    workers (:meth:`scaling.job.Job.partition`: its share of the rows, or of the columns where
    a mode splits them; :meth:`~scaling.job.Job.sample_partitions` of them side by side), while
    at least :data:`MIN_ROWS` rows, at most 8 of them, each capped at :data:`SAMPLE_BYTES`. One
    where the rows do not change an iteration's work (SGD's batches): a few batches' rows."""
    per_iteration = job.rows_per_iteration(config, rows)
    if per_iteration == job.rows_per_iteration(config, max(rows // 2, 1)):
        return [Shape(min(rows, max(MIN_ROWS, 4 * per_iteration)), features)]
    out: list[Shape] = []
    for p in (2**k for k in range(20)):
        n, f = job.partition(rows, features, p, config)
        if len(out) == 8 or (out and n < MIN_ROWS):
            break
        parts = job.sample_partitions(config, p)
        shape = Shape(min(n, max(SAMPLE_BYTES // (8 * f * parts), MIN_ROWS)), f, parts)
        if shape not in out:  # past the cap, or at one column, the next is the same
            out.append(shape)
    return out


def path_for(store: str | Path) -> Path:
    return Path(store) / "calibration" / "samples.json"


def _key(job, config, rows: int, features: int) -> str:
    here = host_facts()
    return json.dumps(
        {
            "host": [here[k] for k in ("hostname", "cores", "cpu")],
            "job": job.name,
            "rows": rows,  # two shapes of other rows kept side by side, not one over the other
            "features": features,
            "config": asdict(config),
        },
        sort_keys=True,
        default=str,
    )


def _read(store: str | Path) -> dict:
    try:
        return json.loads(path_for(store).read_text())
    except (OSError, ValueError):
        return {}


def cached(store: str | Path, job, config, rows: int, features: int) -> list[Sample] | None:
    """The samples of this shape timed on this host before, or ``None``."""
    found = _read(store).get(_key(job, config, rows, features))
    if found is None or sorted(
        Shape(s["rows"], s["features"], s.get("partitions", 1)) for s in found
    ) != sorted(sizes(job, config, rows, features)):
        return None
    return [Sample(**s) for s in found]


def measure(store: str | Path, job, config, rows: int, features: int, say=print) -> list[Sample]:
    """The samples of ``job`` with ``config`` at ``rows`` x ``features``: from the store, or
    timed now (and kept). ``say`` is told, in one line, when they are timed."""
    if (found := cached(store, job, config, rows, features)) is not None:
        return found
    from scaling.engines import make_engine
    from scaling.model.costmodel import describe
    from scaling.run.calibrate import spread

    wanted = sizes(job, config, rows, features)
    planned = [Sample(rows=n, features=f, compute=0.0, partitions=k) for n, f, k in wanted]
    say(f"timing {job.name}'s iteration on {describe(planned)} (once per host and shape)")
    timed = job.timed(config, ITERATIONS)
    typical: dict[Shape, list[float]] = {shape: [] for shape in wanted}
    iterations: dict[Shape, list[float]] = {shape: [] for shape in wanted}
    with make_engine("local", 1) as engine:
        loaded = {
            (n, f, k): engine.load(job.synthetic(n * k, f, 0, config), partitions=k)
            for n, f, k in wanted
        }
        for _ in range(ROUNDS):  # the sizes taking turns: a noisy stretch falls on each alike
            for (n, f, k), ds in loaded.items():
                engine.trace.reset()
                job.fit(engine, ds, timed)
                typical[n, f, k].append(engine.trace.typical(job.iteration)[1]["compute"] / k)
                iterations[n, f, k] += [
                    s["compute"] / k for s in engine.trace.summaries(job.iteration)[1:]
                ]
        for ds in loaded.values():
            engine.release(ds)
    out = [
        Sample(
            rows=n,
            features=f,
            partitions=k,
            compute=statistics.median(typical[n, f, k]),
            spread=spread(iterations[n, f, k]),
        )
        for n, f, k in wanted
    ]
    every = _read(store)
    every[_key(job, config, rows, features)] = [asdict(s) for s in out]
    path = path_for(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(every, indent=1) + "\n").encode())
    return out
