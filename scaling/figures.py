"""Scaling figures derived from run records: curves, speedup, efficiency, COST.

A *curve* is the runs of one job on one engine over worker counts, at one data size, in one
sweep. Its points take the median over repeats. For strong scaling (fixed total rows),
speedup ``S(p) = T(1) / T(p)`` and efficiency ``S(p) / p``; for weak scaling (fixed rows per
worker), weak-scaling efficiency ``T(1) / T(p)``, whose ideal is 1. T is the time per
iteration, always against the 1-worker run of the same curve.

COST (McSherry, Isard, Murray, "Scalability! But at what COST?", HotOS 2015) is the fewest
workers at which the job beats a strong single-thread implementation on the same data
(``None``: not reached within the sweep).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

PARTS = ("compute", "communication", "overhead")


@dataclass
class Point:
    workers: int
    seconds: float  # per iteration, median over repeats
    rows_per_s: float
    split: dict[str, float]  # seconds per iteration in each part
    repeats: int
    speedup: float | None = None
    efficiency: float | None = None


@dataclass
class Curve:
    sweep_id: str
    job: str
    engine: str
    mode: str
    size: int  # total rows (strong) or rows per worker (weak)
    features: int
    points: list[Point] = field(default_factory=list)
    baseline: float | None = None  # seconds per iteration of the single-thread reference
    baseline_name: str | None = None
    label: str = ""

    @property
    def cost(self) -> int | None:
        """Fewest workers that beat the single-thread baseline (COST), if any did."""
        if self.baseline is None:
            return None
        return next((p.workers for p in self.points if p.seconds < self.baseline), None)


def size_of(record: dict) -> int:
    """The curve's size: total rows in strong scaling, rows per worker in weak scaling."""
    return record["rows"] // record["workers"] if record["mode"] == "weak" else record["rows"]


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
            key = (r["sweep_id"], r["job"], r["engine"], r["mode"], size_of(r), r["features"])
            groups.setdefault(key, []).append(r)
    out = []
    for key, runs in groups.items():
        curve = Curve(*key)
        by_workers: dict[int, list[dict]] = {}
        for r in runs:
            by_workers.setdefault(r["workers"], []).append(r)
        for workers in sorted(by_workers):
            rs = sorted(by_workers[workers], key=lambda r: r["timings"]["per_iteration"])
            seconds = statistics.median(r["timings"]["per_iteration"] for r in rs)
            typical = rs[(len(rs) - 1) // 2]  # a real run's split: its parts add up
            curve.points.append(
                Point(
                    workers=workers,
                    seconds=seconds,
                    rows_per_s=rs[0]["rows"] / seconds if seconds > 0 else float("inf"),
                    split=dict(typical["split"]),
                    repeats=len(rs),
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
    """Name each curve by what differs between the curves (engine, job, size, sweep)."""
    varying = [
        attr
        for attr in ("job", "engine", "size", "sweep_id")
        if len({getattr(c, attr) for c in curves_}) > 1
    ] or ["engine"]
    for c in curves_:
        parts = []
        for attr in varying:
            value = getattr(c, attr)
            if attr == "size":
                value = f"{value:,} rows" + ("/worker" if c.mode == "weak" else "")
            parts.append(str(value))
        c.label = " ".join(parts)


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
    above = (
        (
            f"; at {last.workers} workers {part} is furthest above ideal scaling: "
            f"{last.split[part] * 1e3:.1f} ms per iteration against an ideal "
            f"{ideal[part] * 1e3:.1f} ms ({first.split[part] * 1e3:.1f} ms at "
            f"{first.workers})"
        )
        if excess[part] > 0
        else ""
    )
    cost = ""
    if curve.baseline is not None:
        c = curve.cost
        cost = f"; COST against {curve.baseline_name}: " + (
            f"{c} worker{'s' if c > 1 else ''}" if c else "not reached"
        )
    return f"{curve.label}: {where}{above}{cost}."
