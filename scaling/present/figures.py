"""Every figure shown to a user, derived from run records in this one place.

:func:`run_figures` gives one run's numbers (time per iteration, throughput with its unit, the
split into compute / communication / overhead, bytes, the headline quality, and where each
number came from); :func:`curves` the scaling curves over runs. The CLI table, ``scaling
results``, ``compare`` and the HTML report all read these, so they cannot disagree.

A *curve* is the runs of one job on one engine over worker counts, at one data size, in one
sweep. Its points take the median over repeats. For strong scaling (fixed total rows),
speedup ``S(p) = T(1) / T(p)`` and efficiency ``S(p) / p``; for weak scaling (fixed rows per
worker), weak-scaling efficiency ``T(1) / T(p)``, whose ideal is 1. T is the time per
iteration, always against the 1-worker run of the same curve.

A run on a scale model (:mod:`scaling.run.machines`) records its emulation; its times are
shown in the modelled cluster's time, measured / D, and its throughput times D, every such
figure labelled ``emulated (D x)`` (:attr:`RunFigures.clock`): never as a plain measurement.

COST (McSherry, Isard, Murray, "Scalability! But at what COST?", HotOS 2015) is the fewest
workers at which the job beats a strong single-thread implementation on the same data
(``None``: not reached within the sweep).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial

PARTS = ("compute", "communication", "overhead")


@dataclass(frozen=True, kw_only=True)
class RunFigures:
    """The numbers of one successful run, as every view shows them.

    ``throughput`` is in ``unit`` (e.g. ``samples/s``), as the job counts its work;
    ``sources`` says for ``split`` and ``bytes`` whether they were measured or modelled, and
    how (text that starts with ``measured`` or ``modelled``).
    """

    seconds: float  # per iteration
    throughput: float | None
    unit: str
    split: dict[str, float]
    bytes: int
    iterations: int
    headline: tuple[str, object]
    sources: dict[str, str]
    timeline: dict | None = None  # the median iteration, as bars (see scaling.measure.timeline)
    clock: str = "measured"  # or "emulated (D x)": the modelled cluster's time, measured / D

    def share(self, part: str) -> float | None:
        """The fraction of an iteration's time in ``part``."""
        return self.split[part] / self.seconds if self.seconds else None

    def modelled(self, what: str) -> bool:
        """Whether ``what`` (``split`` or ``bytes``) is a model's number, not a measurement."""
        return not self.sources.get(what, "").startswith("measured")


def run_figures(record: dict) -> RunFigures:
    """The figures of one successful (``status: ok``) run record."""
    name = record.get("headline", "")
    d, clock = dilation(record)
    throughput = record["throughput"]["value"]
    return RunFigures(
        seconds=record["timings"]["per_iteration"] / d,
        throughput=None if throughput is None else throughput * d,
        unit=record["throughput"]["unit"],
        split={part: s / d for part, s in record.get("split", {}).items()},
        bytes=record.get("bytes_per_iteration", 0),
        iterations=len(record["timings"].get("iterations", [])),
        headline=(name, record.get("quality", {}).get(name)),
        sources=dict(record.get("sources", {})),
        timeline=_on_clock(record.get("timeline"), d),
        clock=clock,
    )


def _on_clock(timeline: dict | None, d: float) -> dict | None:
    """A run's timeline with every bar's times divided by the dilation ``d``."""
    if not timeline or d == 1.0:
        return timeline
    bars = [{**b, "start": b["start"] / d, "end": b["end"] / d} for b in timeline["bars"]]
    return {**timeline, "bars": bars}


def dilation(record: dict) -> tuple[float, str]:
    """What a record's times are divided by to be shown, and how they are labelled: 1 and
    ``measured``, or a scale model's measured dilation D and ``emulated (D x)``."""
    emulation = record.get("emulation")
    if not emulation:
        return 1.0, "measured"
    d = float(emulation["dilation"])
    return d, f"emulated ({d:.2f}x)"


@dataclass(kw_only=True)
class Point:
    """A curve at one worker count: the median over its repeats."""

    workers: int
    seconds: float  # per iteration, median over repeats
    throughput: float  # at the median time, in the curve's unit
    split: dict[str, float]  # seconds per iteration in each part, of the median run
    repeats: int
    figures: RunFigures  # the median run's
    speedup: float | None = None
    efficiency: float | None = None
    predicted: float | None = None  # seconds per iteration, modelled (scaling.model.costmodel)
    predicted_spread: float = 0.0  # its interval's half-width (Terms.interval), modelled
    fastest: float = 0.0  # the spread over repeats: the fastest and slowest run's seconds
    slowest: float = 0.0


@dataclass(kw_only=True)
class Curve:
    sweep_id: str
    job: str
    engine: str
    mode: str
    size: int  # total rows (strong) or rows per worker (weak)
    features: int
    execution: str = "driver"  # or "allreduce" (scaling.execution)
    unit: str = ""
    points: list[Point] = field(default_factory=list)
    baseline: float | None = None  # seconds per iteration of the single-thread reference
    baseline_name: str | None = None
    label: str = ""
    options: dict = field(default_factory=dict)  # the job's config (the execution aside)
    clock: str = "measured"  # or "emulated (D x)" (RunFigures.clock)

    @property
    def key(self) -> tuple:
        """The fields that name the curve, as :func:`curve_key` gives them for a run."""
        return (
            self.sweep_id,
            self.job,
            self.engine,
            self.mode,
            self.size,
            self.features,
            self.execution,
        )

    @property
    def cost(self) -> int | None:
        """Fewest workers that beat the single-thread baseline (COST), if any did."""
        if self.baseline is None:
            return None
        return next((p.workers for p in self.points if p.seconds < self.baseline), None)


def size_of(record: dict) -> int:
    """The curve's size: total rows in strong scaling, rows per worker in weak scaling."""
    return record["rows"] // record["workers"] if record["mode"] == "weak" else record["rows"]


CURVE_KEY = ("sweep_id", "job", "engine", "mode", "size", "features", "execution")
"""The fields of :class:`Curve` that say which curve a run is on."""


def curve_key(record: dict) -> tuple:
    """What a run's curve is: sweep, job, engine, mode, size, features and execution (the
    first fields of :class:`Curve`)."""
    r = record
    execution = r.get("execution") or r.get("config", {}).get("execution", "driver")
    return r["sweep_id"], r["job"], r["engine"], r["mode"], size_of(r), r["features"], execution


def curves(records: Iterable[dict]) -> list[Curve]:
    """Group successful runs into curves, with derived figures and labels that tell them apart."""
    records = [r for r in records if r.get("status") == "ok"]
    baselines = {
        (r["sweep_id"], r["job"], r["rows"], r["features"]): r
        for r in records
        if r["engine"] == "baseline"
    }
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r["engine"] != "baseline":
            groups.setdefault(curve_key(r), []).append(r)
    out = []
    for key, runs in groups.items():
        options = {k: v for k, v in runs[0].get("config", {}).items() if k != "execution"}
        named = dict(zip(CURVE_KEY, key, strict=True))
        first = run_figures(runs[0])
        curve = Curve(**named, unit=first.unit, options=options, clock=first.clock)
        by_workers: dict[int, list[RunFigures]] = {}
        for r in runs:
            by_workers.setdefault(r["workers"], []).append(run_figures(r))
        for workers in sorted(by_workers):
            fs = sorted(by_workers[workers], key=lambda f: f.seconds)
            typical = fs[(len(fs) - 1) // 2]  # a real run's split: its parts add up
            seconds = statistics.median(f.seconds for f in fs)
            # An iteration's work is the same in every repeat: the throughput at the median time
            # (the median run's own, when there is one, as every other view shows it).
            units = (typical.throughput or 0.0) * typical.seconds
            at_median = typical.throughput if seconds == typical.seconds else units / seconds
            curve.points.append(
                Point(
                    workers=workers,
                    seconds=seconds,
                    throughput=at_median,
                    split=typical.split,
                    repeats=len(fs),
                    figures=typical,
                    fastest=fs[0].seconds,
                    slowest=fs[-1].seconds,
                )
            )
        _derive(curve)
        if curve.mode == "strong":
            base = baselines.get((curve.sweep_id, curve.job, curve.size, curve.features))
            if base is not None:
                curve.baseline = base["timings"]["per_iteration"]
                curve.baseline_name = base["baseline"]
        out.append(curve)
    _label(out)
    return sorted(out, key=lambda c: (c.sweep_id, c.job, c.size, c.engine))


def _model(curve: Curve, records: list[dict], store):
    """The cost model of a strong-scaling curve with a 1-worker run on an engine calibrated on
    this host in ``store``: a function of the worker counts giving predicted
    :class:`~scaling.model.costmodel.Terms`; ``None`` where there is none."""
    from jobs import get_job
    from scaling.model import calibration, costmodel

    if curve.mode != "strong" or curve.engine == "local":
        return None
    runs = [r for r in records if r.get("status") == "ok" and curve_key(r) == curve.key]
    ones = [r for r in runs if r["workers"] == 1]
    cal = calibration.load(store, curve.engine) if ones else None
    if cal is None:
        return None
    job = get_job(curve.job)
    config = job.config(**runs[0]["config"])
    fitted = costmodel.correction(job, curve.engine, config, ones, cal)
    steps = partial(job.explain, curve.size, curve.features, config=config)
    return partial(costmodel.predict, steps, calibration=cal, correction=fitted)


def predict_points(curves_: Iterable[Curve], records: Iterable[dict], store) -> str | None:
    """Set each point's ``predicted`` time per iteration (modelled) where the cost model can
    (:func:`_model`: the curve's 1-worker run corrects its compute, so the 1-worker point is
    fitted and the others are predicted). Returns a line on what was predicted, or ``None``
    when nothing was.
    """
    records = list(records)
    done = []
    for c in curves_:
        model = _model(c, records, store)
        if model is None:
            continue
        for point, t in zip(c.points, model([p.workers for p in c.points]), strict=True):
            point.predicted, point.predicted_spread = t.seconds, t.spread
        done.append(c.engine)
    if not done:
        return None
    return (
        "Predicted times (modelled, scaling.model.costmodel) use each engine's calibration on this "
        "host and the curve's own 1-worker run to correct compute: the 1-worker point is "
        "fitted, the others are predictions."
    )


def predicted_best(curve: Curve, records: Iterable[dict], store, most: int = 1024) -> int | None:
    """The worker count (a power of two up to ``most``) the cost model predicts fastest for
    this curve's job and shape (modelled); ``None`` without a model (:func:`_model`)."""
    model = _model(curve, list(records), store)
    if model is None:
        return None
    terms = model([2**i for i in range(most.bit_length())])
    return min(terms, key=lambda t: t.seconds).workers


def _derive(curve: Curve) -> None:
    one = next((p for p in curve.points if p.workers == 1), None)
    if one is None:
        return
    for p in curve.points:
        ratio = one.seconds / p.seconds if p.seconds > 0 else None
        if ratio is None:
            continue
        if curve.mode == "strong":
            p.speedup, p.efficiency = ratio, ratio / p.workers
        else:  # weak scaling: the same work per worker, so the ideal time stays T(1)
            p.speedup, p.efficiency = ratio * p.workers, ratio


def _label(curves_: list[Curve]) -> None:
    """Name each curve by what differs between the curves: engine, job, execution, size, the
    job's options (``strategy=local-sgd``); the sweep only where those leave two alike."""
    varying = [
        attr
        for attr in ("job", "engine", "execution", "size")
        if len({getattr(c, attr) for c in curves_}) > 1
    ] or ["engine"]
    options = {
        key
        for job in {c.job for c in curves_}
        for key in {k for c in curves_ if c.job == job for k in c.options}
        if len({repr(c.options.get(key)) for c in curves_ if c.job == job}) > 1
    }
    for c in curves_:
        parts = []
        for attr in varying:
            value = getattr(c, attr)
            if attr == "size":
                value = f"{value:,} rows" + ("/worker" if c.mode == "weak" else "")
            parts.append(str(value))
        if "execution" not in varying and c.execution != "driver":
            parts.append(c.execution)  # say it even when every curve is all-reduce
        parts += [f"{k}={c.options[k]}" for k in sorted(options) if k in c.options]
        if c.clock != "measured":
            parts.append(c.clock)
        c.label = " ".join(parts)
    labels = [c.label for c in curves_]
    for c in curves_:
        if labels.count(c.label) > 1:
            c.label += f" {c.sweep_id}"


def winners(curves_: Iterable[Curve]) -> list[dict]:
    """The fastest curve, measured and predicted, at each worker count that several curves of
    one job, engine, mode and shape share (decompositions side by side: solvers, strategies,
    modes, execution styles). ``predicted`` is ``None`` unless every contender has a
    prediction there; ``margin``, how much slower the model predicts the runner-up (modelled);
    ``tied``, whether the model cannot tell the two apart
    (:func:`scaling.model.costmodel.cannot_tell`), where ``predicted`` names both."""
    from scaling.model.costmodel import cannot_tell

    cells: dict[tuple, list[tuple[Curve, Point]]] = {}
    for c in curves_:
        for p in c.points:
            key = (c.job, c.engine, c.mode, c.size, c.features, p.workers)
            cells.setdefault(key, []).append((c, p))
    out = []
    for (job, engine, mode, size, features, workers), pairs in cells.items():
        if len(pairs) < 2:
            continue
        fastest = min(pairs, key=lambda cp: cp[1].seconds)
        predicted, margin, tied = None, None, False
        if all(p.predicted for _, p in pairs):
            (first, a), (second, b) = sorted(pairs, key=lambda cp: cp[1].predicted)[:2]
            margin = b.predicted / a.predicted - 1
            tied = cannot_tell((a.predicted, a.predicted_spread), (b.predicted, b.predicted_spread))
            predicted = f"{first.label} or {second.label}" if tied else first.label
        out.append(
            {
                "cell": f"{job} on {engine}, {size:,} x {features}, {workers} "
                f"worker{'s' * (workers != 1)}" + (" (weak)" if mode == "weak" else ""),
                "measured": fastest[0].label,
                "seconds": fastest[1].seconds,
                "predicted": predicted,
                "margin": margin,
                "tied": tied,
            }
        )
    return out


def cores_note(records: Iterable[dict]) -> str | None:
    """One line when the runs asked for more cores than their host has, else ``None``.

    A p-worker run needs p cores for its workers and one for the driver (which schedules,
    combines and updates in the driver loop, and waits in a gang); with fewer, the curve past
    that point shows processes queueing for cores, not how the algorithm scales. The local
    engine runs its workers one after another in the driver and needs one core; a scale model
    gives each of its machines a share of its own.
    """
    short = [
        r["host"]["cores"]
        for r in records
        if r.get("status") == "ok"
        and r["engine"] not in ("local", "baseline")
        and not r.get("emulation")
        and r.get("host", {}).get("cores")
        and r["workers"] + 1 > r["host"]["cores"]
    ]
    if not short:
        return None
    cores = max(short)
    return (
        f"This machine has {cores} cores: at {cores} workers "
        f"and more, the workers and the driver need more cores than it has, so those points "
        "show processes waiting for a core, not the algorithm's scaling (a scale model of "
        "more machines, `scaling sweep JOB --emulate N` as root, draws the curve past them: "
        "benchmarks/results/emulated-8.md)."
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds >= 0.001 else f"{seconds * 1e6:.0f} us"


def reading(curve: Curve, threshold: float = 0.8) -> str:
    """A sentence on where the curve's efficiency drops and which part of the time grows."""
    pts = [p for p in curve.points if p.efficiency is not None]
    if len(pts) < 2:
        return f"{curve.label}: one worker count only; nothing to compare."
    first, last = pts[0], pts[-1]
    kind = "weak-scaling efficiency" if curve.mode == "weak" else "efficiency"
    drop = next((p for p in pts if p.efficiency < threshold), None)
    where = (
        f"{kind} falls below {threshold:.0%} at {drop.workers} workers ({drop.efficiency:.0%})"
        if drop
        else f"{kind} stays at or above {threshold:.0%} up to {last.workers} workers "
        f"({last.efficiency:.0%})"
    )
    # Ideal strong scaling divides every part by p (weak scaling keeps it); what stays above
    # that is where the efficiency went.
    scale = last.workers / first.workers if curve.mode == "strong" else 1.0
    ideal = {part: first.split[part] / scale for part in PARTS}
    excess = {part: last.split[part] - ideal[part] for part in PARTS}
    part = max(excess, key=excess.get)
    above = ""
    if excess[part] > 0:
        above = f"; at {last.workers} workers {part} takes {_ms(last.split[part])} per iteration"
        if first.split[part] >= 0.05 * last.split[part]:
            above += (
                f", where {_ms(first.split[part])} at {first.workers} divided by "
                f"{scale:g} would be {_ms(ideal[part])}"
                if scale != 1
                else f" against {_ms(first.split[part])} at {first.workers}"
            )
        else:  # a cost the first count did not pay (a gang of one has no one to talk to)
            above += f", a cost that {first.workers} worker{'s' * (first.workers > 1)} did not pay"
    cost = ""
    if curve.baseline is not None:
        c = curve.cost
        cost = f"; COST against {curve.baseline_name}: " + (
            f"{c} worker{'s' if c > 1 else ''}" if c else "not reached"
        )
    return f"{curve.label}: {where}{above}{cost}."
