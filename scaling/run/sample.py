"""Compute timed at the shape asked about, as Ernest samples (Venkataraman et al., NSDI 2016):
the job's own iteration on a sample of the rows, in-process on one core.

A worker's compute is its share of one iteration: its map kernels on its rows. The cost model
prices it as ``fixed + factor x roofline`` (:class:`~scaling.model.costmodel.Correction`);
fitted on runs of other shapes that line does not carry to a third (41-78% off at 128
features, ``benchmarks/results/costmodel.md``), so it is fitted here on the shape itself:
:data:`ITERATIONS` iterations of the job at its features and options on :data:`SAMPLE_ROWS`
rows, a half and a quarter of them (fewer where the data has fewer), timed by the trace.
Three sizes check the kernel's scaling in rows: the fit says how far the line misses each.

Timings are kept per host, job, options and features in ``<store>/calibration/samples.json``
(atomically), so a second ``scaling predict`` answers without running anything.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from scaling.measure.host import host_facts
from scaling.results import atomic_write

SAMPLE_ROWS = 100_000
"""The largest sample: per iteration 10-100 ms of the jobs' kernels on one core, more than
the caches hold (what the kernels read from memory is in the timing), and the three samples of
a shape within seconds."""

ITERATIONS = 4
"""Iterations per sample; the trace's median after the first is its time."""


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One iteration's compute (seconds) on ``rows`` x ``features`` on one core."""

    rows: int
    features: int
    compute: float


def sizes(rows: int) -> list[int]:
    """The sample sizes for a dataset of ``rows``: the cap (or all the rows), a half, a
    quarter."""
    n = min(rows, SAMPLE_ROWS)
    return sorted({max(n // 4, 1), max(n // 2, 1), n}, reverse=True)


def path_for(store: str | Path) -> Path:
    return Path(store) / "calibration" / "samples.json"


def _key(job, config, features: int) -> str:
    here = host_facts()
    return json.dumps(
        {
            "host": [here[k] for k in ("hostname", "cores", "cpu")],
            "job": job.name,
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
    found = _read(store).get(_key(job, config, features))
    if found is None or sorted(s["rows"] for s in found) != sorted(sizes(rows)):
        return None
    return [Sample(**s) for s in found]


def measure(store: str | Path, job, config, rows: int, features: int, say=print) -> list[Sample]:
    """The samples of ``job`` with ``config`` at ``rows`` x ``features``: from the store, or
    timed now (and kept). ``say`` is told, in one line, when they are timed."""
    if (found := cached(store, job, config, rows, features)) is not None:
        return found
    from scaling.engines import make_engine

    wanted = sizes(rows)
    say(
        f"timing {job.name}'s iteration on samples of {', '.join(f'{n:,}' for n in wanted)} "
        f"rows x {features} features (once per host and shape)"
    )
    timed = job.timed(config, ITERATIONS)
    out = []
    with make_engine("local", 1) as engine:
        for n in wanted:
            ds = engine.load(job.synthetic(n, features, 0, config))
            engine.trace.reset()
            job.fit(engine, ds, timed)
            _, typical = engine.trace.typical(job.iteration)
            engine.release(ds)
            out.append(Sample(rows=n, features=features, compute=typical["compute"]))
    every = _read(store)
    every[_key(job, config, features)] = [asdict(s) for s in out]
    path = path_for(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(every, indent=1) + "\n").encode())
    return out
