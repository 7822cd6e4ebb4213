"""The cost model: time per iteration at any worker count, from a job's declared steps.

One source: the steps :func:`scaling.model.steps` prints (each with its work, the bytes it sends
and the pattern they travel in) are what the model prices, with this engine's and host's
calibration (:mod:`scaling.model.calibration`)::

    T(p) = compute(p) x (1 + straggle) + communication(p) + overhead(p)

- **compute**: each step's work on the busiest process on the roofline, its flops at the
  measured GEMM rate plus its bytes read at the measured memory bandwidth (one core each;
  :meth:`~scaling.model.calibration.Calibration.roofline`), corrected (:class:`Correction`)
  to ``fixed + factor x roofline``, where ``fixed`` is the per-iteration cost that does not
  shrink with p (the library's dispatch between kernels: Amdahl's serial part inside each
  worker). The line is fitted on the job's own iteration timed on samples of the shape asked
  about (:mod:`scaling.run.sample`, as Ernest samples), else on its measured 1-worker runs;
  one shape measured gives the factor alone; none, the roofline alone, and the answer says
  so.
- **straggle**: the measured spread of equal tasks across p workers, (max - median) /
  median, paid by every step that waits for all workers (p > 1); measured at each count the
  calibration ran (the slowest of p grows with p), between them interpolated
  (:meth:`~scaling.model.calibration.Calibration.straggle_at`).
- **communication**: each step's bytes by the pattern they travel in
  (:mod:`scaling.model.patterns`); ``hops`` latencies ``alpha`` in sequence plus the busiest
  end's bytes over ``beta`` (seconds per byte):

  ==============  =====================  ==========================================
  pattern         latencies              bytes on the busiest link
  ==============  =====================  ==========================================
  tree            ceil(log2 p) + 1       m per level, to the driver last (up link)
  scatter         1                      p m, the driver to each worker (down link)
  allreduce       log2 p (+2 folding);   m per round; ring: 2 (p - 1) / p m
                  ring above 256 kB:
                  2 (p - 1)
  ring            2 (p - 1)              2 (p - 1) / p m (``sends`` holds it)
  allgather       p - 1                  (p - 1) records (``sends`` holds it)
  reduce-scatter  p - 1                  (p - 1) / p m (``sends`` holds it)
  alltoall        p - 1                  (p - 1) / p m (``sends`` holds it)
  server          2                      (p - 1) m: the others' gradients in while the
                                         parameters go out (full duplex; rank 0's own
                                         replica on its loopback)
  ==============  =====================  ==========================================

  For the peer patterns a step's ``sends`` is already what one worker sends in all (the
  job's formula, checked against the kernel's counters in the job tests). A step on a
  library's own transport is priced at that library's link, timed by message size in the
  calibration: XGBoost's and torch's gloo all-reduces called at each size, LightGBM's (which
  no Python call reaches) in rounds of one split over histograms of each size. A calibration
  without a library's link prices its steps at the peer link times the transport factor its
  measured wider runs give (:class:`Correction`).
  Each link is priced as fitted at the step's worker count (between two counts measured,
  linear in log2 p; the widest's beyond): its messages were timed after work, as the steps
  send theirs, where a worker that has just computed answers later than an idle one (on a
  scale model, one that spent its CPU quota waits for its next period: ``barrier.md``).
- **overhead**: a driver loop pays the engine's empty call, ``a + b p`` (latencies of
  the driver links included); a gang pays its measured empty iteration.

``--network`` swaps the peer link (and the driver links) for a named network's latency and
bandwidth, keeping this host's compute: "what would 64 machines on 10 GbE do".
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from scaling.model.patterns import busiest_bytes, hops
from scaling.units import seconds

MODEL_ERROR = 0.10
"""The model's own error, as measured: about the median |predicted / measured - 1| of its
held-out points in ``benchmarks/results/costmodel.md`` (4% at 1 worker, 11% on shapes no fit
saw, 13% over all of them, the 2-worker ones missed most where two workers and the driver
share 2 cores). Two decompositions predicted closer than this are a race it cannot call
(:func:`cannot_tell`)."""


def cannot_tell(first: tuple[float, float], second: tuple[float, float]) -> bool:
    """Whether the model cannot tell which of two predictions, each (seconds, its interval's
    half-width), is faster: the slower within :data:`MODEL_ERROR` of the faster, or their
    intervals overlapping."""
    (a, da), (b, db) = sorted((first, second))
    return b <= a * (1 + MODEL_ERROR) or a + da >= b - db


@dataclass(frozen=True, kw_only=True)
class Terms:
    """One worker count's predicted time per iteration, by term (seconds)."""

    workers: int
    compute: float
    straggle: float
    communication: float
    overhead: float
    spread: float = 0.0  # the interval's half-width, seconds
    extrapolated: bool = False  # beyond the widest count the calibration measured

    @property
    def seconds(self) -> float:
        return self.compute + self.straggle + self.communication + self.overhead

    @property
    def interval(self) -> tuple[float, float]:
        """The time per iteration give or take what the measurements it rests on spread by:
        the samples' iterations (compute) and the engine's empty calls (overhead)."""
        return max(self.seconds - self.spread, 0.0), self.seconds + self.spread

    @property
    def parts(self) -> dict[str, float]:
        """The four terms by name, in the order the formula adds them."""
        return {
            "compute": self.compute,
            "straggle": self.straggle,
            "communication": self.communication,
            "overhead": self.overhead,
        }

    @property
    def dominant(self) -> str:
        parts = self.parts
        return max(parts, key=parts.__getitem__)


def predict(steps_at, workers: list[int], calibration, correction: Correction, network=None):
    """The predicted :class:`Terms` at each worker count.

    ``steps_at(p)`` gives the job's steps at ``p`` workers (its ``explain``); ``calibration``
    a :class:`scaling.model.calibration.Calibration`; ``correction`` what the job's measured runs
    correct (:func:`correction`); ``network`` a :class:`~scaling.model.patterns.Link`
    replacing the measured ones.
    """
    out = []
    for p in workers:
        steps = steps_at(p)
        busiest = correction.compute(roofline(steps, calibration))
        own, library = communication(steps, p, calibration, network)
        driver_loop = any(s.pattern == "tree" for s in steps)
        overhead = calibration.call_overhead(p) if driver_loop else calibration.gang_iteration
        straggle = busiest * calibration.straggle_at(p)
        comm = own + correction.transport * library
        out.append(
            Terms(
                workers=p,
                compute=busiest,
                straggle=straggle,
                communication=comm,
                overhead=overhead,
                spread=(busiest + straggle) * correction.spread
                + overhead * calibration.call_spread,
                extrapolated=p > max(calibration.workers),
            )
        )
    return out


def curve(
    job,
    config,
    rows: int,
    features: int,
    workers: list[int],
    cal,
    records,
    network=None,
    samples=None,
) -> tuple[dict, list[str]]:
    """The predicted curve of ``job`` on ``rows`` x ``features`` at each worker count
    (:func:`summary`, corrected by the job's runs among ``records`` and its iteration timed on
    ``samples`` of the shape), and its assumptions."""
    correction_ = correction(job, cal.engine, config, records, cal, samples)
    terms = predict(
        lambda p: job.explain(rows, features, p, config), workers, cal, correction_, network
    )
    return summary(terms), [
        f"{cal.engine}'s calibration of {cal.measured_at} on {cal.host['hostname']} "
        f"({cal.host['cores']} cores), measured at {','.join(map(str, cal.workers))} workers",
        *correction_.where,
        f"the engine's empty call {seconds(cal.call[0])} + "
        f"{seconds(cal.call[1])} x workers, fitted at those counts and extrapolated "
        "as a line; a gang's empty iteration "
        f"{seconds(cal.gang_iteration)} at any count",
        "one core per worker; stragglers: "
        + (
            ", ".join(f"+{s:.0%} at {p}" for p, s in cal.straggles.items() if int(p) > 1)
            or f"+{cal.straggle:.0%}"
        )
        + " of compute (the measured spread at each count; the widest's beyond it)",
    ]


@dataclass(frozen=True, kw_only=True)
class Correction:
    """What measured runs of a job correct in its model.

    - **compute** ``fixed + factor x roofline``, from 1-worker runs: ``fixed`` is what every
      worker pays whatever its share of the rows (the library's dispatch and Python between
      kernels: it does not shrink with p), ``factor`` how far the kernels sit from the
      roofline; or, from samples of the shape (:func:`fit_samples`), ``measured``: (roofline,
      compute) pairs, sorted, between which compute is interpolated (the per-row cost
      changes where a worker's rows outgrow a cache, which no one line follows);
    - **transport**, a factor on the time of the steps whose library brings its own sockets
      (:attr:`scaling.model.steps.Step.transport`) and the calibration did not time (one
      made before it timed LightGBM's): what the model leaves of measured runs at 2 or more
      workers, over its time for that transport at the peer link (:func:`fit_transport`).

    ``where`` says what each was fitted on.
    """

    fixed: float = 0.0
    factor: float = 1.0
    measured: tuple[tuple[float, float], ...] = ()
    spread: float = 0.0  # of the measured compute, relative (see Terms.interval)
    transport: float = 1.0
    where: tuple[str, ...] = ("compute on the roofline alone (nothing measured to correct it)",)

    def compute(self, roofline: float) -> float:
        if len(self.measured) < 2:
            return self.fixed + self.factor * roofline
        # Between two samples, the line through them; beyond the largest, the line through
        # the two largest (past the caches each row costs the same); below the smallest, the
        # line through the two smallest, or, where that would cross zero, in proportion.
        pairs = self.measured
        i = next((k for k in range(1, len(pairs) - 1) if roofline < pairs[k][0]), len(pairs) - 1)
        (r0, c0), (r1, c1) = pairs[i - 1], pairs[i]
        line = c0 + (c1 - c0) * (roofline - r0) / (r1 - r0)
        if roofline < r0 and line < c0 * roofline / r0:
            return c0 * roofline / r0
        return line


def roofline(steps, calibration) -> float:
    """The roofline's time for these steps on one core of the calibrated host."""
    return sum(calibration.roofline(s.flops, s.reads) for s in steps)


def roofline_seconds(job, rows: int, features: int, config, calibration) -> float:
    """The roofline's time for one iteration of ``job`` at one worker on this shape."""
    return roofline(job.explain(rows, features, 1, config), calibration)


def communication(steps, workers: int, calibration, network=None) -> tuple[float, float]:
    """Seconds the steps' collectives take at the calibrated links (or ``network``): those on
    a calibrated transport (this project's, or a library's that the calibration timed by
    size), and those on a library's own that it did not time (priced at the peer link,
    uncorrected)."""
    own = library = 0.0
    for s in steps:
        if not s.pattern:
            continue
        timed = calibration.library(s.transport, workers) if s.transport else None
        link = network or timed or calibration.link(s.pattern, workers)
        # ``sends`` is the iteration's in all; each of the ``repeats`` pays its latencies.
        t = link.time(
            s.repeats * hops(s.pattern, workers, s.sends),
            busiest_bytes(s.pattern, workers, s.sends),
        )
        if s.transport and timed is None:
            library += t
        else:
            own += t
    return own, library


def fit_compute(
    samples: list[tuple[float, float]], what: str, runs: str | None = None
) -> Correction:
    """The compute part of a :class:`Correction`, from 1-worker runs' (roofline seconds,
    measured compute seconds); ``runs`` says what they were (default: measured 1-worker runs
    of ``what``).

    Two shapes or more: the least-squares line (a negative fixed cost is dropped for a line
    through the origin: the median of the runs' ratios, so that with two shapes each misses
    by half their difference). One shape: its ratio alone, the median over its runs. None:
    the roofline alone.
    """
    samples = [(r, c) for r, c in samples if r > 0 and c > 0]
    n = len(samples)
    runs = runs or f"{n} measured 1-worker run{'s' * (n != 1)} of {what}"
    if len({r for r, _ in samples}) > 1:
        import numpy as np

        slope, intercept = np.polyfit([r for r, _ in samples], [c for _, c in samples], 1)
        if intercept >= 0 and slope > 0:
            return Correction(
                fixed=float(intercept),
                factor=float(slope),
                where=(
                    f"compute = {seconds(intercept)} + roofline x {slope:.2f}, fitted on {runs}",
                ),
            )
    if not samples:
        return Correction(where=(f"compute on the roofline alone: no 1-worker run of {what}",))
    factor = statistics.median(c / r for r, c in samples)
    return Correction(
        factor=factor, where=(f"compute = roofline x {factor:.2f}, the median of {runs}",)
    )


def fit_transport(
    correction: Correction, runs: list[tuple[list, int, float]], calibration, what: str
) -> Correction:
    """``correction`` with the transport factor that makes the model meet wider runs:
    ``runs`` holds each run's steps, workers and measured seconds per iteration. The factor
    is the median over the runs of what the model leaves of their time (the rest priced as
    :func:`predict` does) over its time for the library's own transport; unchanged without a
    run whose steps use one."""
    ratios = []
    for steps, p, wall in runs:
        _, library = communication(steps, p, calibration)
        if library > 0:
            (rest,) = predict(
                lambda _, steps=steps: steps, [p], calibration, replace(correction, transport=0)
            )
            ratios.append(max(wall - rest.seconds, 0.0) / library)
    if not ratios:
        return correction
    ratio, k = statistics.median_low(ratios), len(ratios)
    return replace(
        correction,
        transport=ratio,
        where=(
            *correction.where,
            f"the library's own transport at {ratio:.2f}x the calibrated links' time, the "
            f"median of {k} measured run{'s' * (k != 1)} of {what} at 2+ workers",
        ),
    )


def describe(samples) -> str:
    """Samples (:class:`scaling.run.sample.Sample`) in words: ``3 samples of 8,192 to 32,768
    rows x 16``, or ``... x 1 to 16 features`` where a mode splits the columns."""

    def span(values: list[int]) -> str:
        lo, hi = min(values), max(values)
        return f"{lo:,}" + (f" to {hi:,}" if hi > lo else "")

    features = [s.features for s in samples]
    across = span(features) + (" features" if len(set(features)) > 1 else "")
    rows = span([s.rows for s in samples])
    said = f"{len(samples)} sample{'s' * (len(samples) > 1)} of {rows} rows x {across}"
    if (parts := [s.partitions for s in samples]) != [1] * len(samples):
        said += f" (in {span(parts)} partitions side by side on one core)"
    return said


def fit_samples(job, config, samples, calibration) -> Correction:
    """The compute part of a :class:`Correction` from the job's iteration timed on samples of
    the shape asked about (:mod:`scaling.run.sample`): interpolated between them, each
    sample's factor on the roofline saying what the caches do to the kernels."""
    pairs = sorted(
        (roofline_seconds(job, s.rows, s.features, config, calibration), s.compute) for s in samples
    )
    what = f"{describe(samples)}, {job.name}'s iteration timed on this host"
    distinct = {r for r, _ in pairs if r > 0}
    if len(distinct) < 2:  # the rows do not change the work (SGD's batches): one factor
        correction = fit_compute(pairs, job.name, runs=what)
        return replace(correction, spread=statistics.median(s.spread for s in samples))
    factors = [c / r for r, c in pairs if r > 0]
    return Correction(
        measured=tuple(pairs),
        spread=statistics.median(s.spread for s in samples),
        where=(
            f"compute interpolated between {what} (per row "
            f"{min(factors):.2f}-{max(factors):.2f}x the roofline over them)",
        ),
    )


def correction(
    job, engine: str, config, records: list[dict], calibration, samples=None
) -> Correction:
    """The :class:`Correction` of ``job`` from its runs on ``engine`` in ``records`` measured on
    this host's own cores with the same options (the execution style aside; any shape): a
    scale model's runs are timed on a dilated clock and slowed links, not the calibrated ones.
    With ``samples`` (:mod:`scaling.run.sample`), compute comes from them instead of the
    1-worker runs."""
    from dataclasses import asdict

    wanted = {k: v for k, v in asdict(config).items() if k != "execution"}
    ones, wider = [], []
    for r in records:
        if (
            (r.get("job"), r.get("engine"), r.get("status")) != (job.name, engine, "ok")
            or r.get("host", {}).get("hostname") != calibration.host["hostname"]
            or r.get("emulation")
        ):
            continue
        if {k: v for k, v in r["config"].items() if k != "execution"} != wanted:
            continue
        run_config, p = job.config(**r["config"]), r["workers"]
        if p == 1:
            roof = roofline_seconds(job, r["rows"], r["features"], run_config, calibration)
            ones.append((roof, r["split"]["compute"]))
        else:
            steps = job.explain(r["rows"], r["features"], p, run_config)
            wider.append((steps, p, r["timings"]["per_iteration"]))
    what = f"{job.name} on {engine} with these options"
    compute = fit_samples(job, config, samples, calibration) if samples else fit_compute(ones, what)
    return fit_transport(compute, wider, calibration, what)


def summary(terms: list[Terms]) -> dict:
    """Speedup and efficiency against the first worker count's time, the best count, and
    where efficiency falls under 50%."""
    base = terms[0]
    rows = []
    for t in terms:
        speedup = base.seconds * base.workers / t.seconds
        rows.append(
            {
                "workers": t.workers,
                "seconds_per_iteration": t.seconds,
                "interval": list(t.interval),
                "extrapolated": t.extrapolated,
                "speedup": speedup,
                "efficiency": speedup / t.workers,
                "dominant": t.dominant,
                "terms": t.parts,
                "source": "modelled",
            }
        )
    best = min(rows, key=lambda r: r["seconds_per_iteration"])["workers"]
    under = next((r["workers"] for r in rows if r["efficiency"] < 0.5), None)
    return {"rows": rows, "best_workers": best, "efficiency_under_half_at": under}
