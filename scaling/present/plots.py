"""The figures as matplotlib plots: speedup, efficiency, throughput and the split of each point
(measured points with their spread, modelled ones hatched), one iteration's timeline and a
predicted curve."""

from __future__ import annotations

import io
from collections.abc import Sequence

from scaling.present.figures import (
    PARTS,
    Curve,
    Point,
)

PLOTS = ("speedup", "efficiency", "throughput", "split")


_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


_LINES = ("-", "--", "-.")
"""Each curve its own marker (and past seven, line style): equal curves stay visible."""


_COLOURS = {
    "compute": "#4C72B0",
    "communication": "#DD8452",
    "overhead": "#C44E52",
    "straggle": "#8172B3",
    "wait": "#BBBBBB",
}


_MODELLED = {"alpha": 0.45, "hatch": "//"}
"""How a modelled area is drawn, beside a measured one: faded and hatched."""


def plot(kind: str, curves_: Sequence[Curve]):
    """One matplotlib Figure of ``kind`` (one of :data:`PLOTS`), one line per curve."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.subplots()
    weak = all(c.mode == "weak" for c in curves_)
    if kind == "split":
        _split_bars(ax, curves_)
    else:
        for i, c in enumerate(curves_):
            pts = [p for p in c.points if kind == "throughput" or p.speedup is not None]
            y = [getattr(p, kind) for p in pts]
            line = ax.errorbar(
                [p.workers for p in pts],
                y,
                yerr=list(zip(*(_spread(v, p) for v, p in zip(y, pts, strict=True)), strict=True)),
                marker=_MARKERS[i % len(_MARKERS)],
                linestyle=_LINES[i // len(_MARKERS) % len(_LINES)],
                capsize=3,
                label=c.label,
            ).lines[0]
            modelled = [p for p in c.points if p.predicted]
            if kind == "speedup" and len(modelled) == len(c.points) > 1:
                one = modelled[0].predicted * modelled[0].workers
                ax.plot(
                    [p.workers for p in modelled],
                    [one / p.predicted for p in modelled],
                    linestyle=":",
                    color=line.get_color(),
                    label=f"{c.label} (modelled)",
                )
        workers = sorted({p.workers for c in curves_ for p in c.points})
        if kind == "speedup":
            ax.plot(workers, workers, color="grey", linestyle="--", linewidth=1, label="ideal")
        elif kind == "efficiency":
            ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="ideal")
            ax.set_ylim(0, max(1.1, ax.get_ylim()[1]))
        elif kind == "throughput":
            ax.yaxis.set_major_formatter(EngFormatter())  # 1.2 M, not a 1e6 offset
        ax.set_xticks(workers)
        ax.set_xlabel("workers")
        fig.legend(loc="outside lower center", fontsize="small", ncols=2)
    ax.set_ylabel(
        {
            "speedup": "speedup T(1)/T(p)",
            "efficiency": "weak-scaling efficiency T(1)/T(p)" if weak else "efficiency S(p)/p",
            "throughput": " / ".join(sorted({c.unit for c in curves_})),
            "split": "seconds per iteration",
        }[kind]
    )
    ax.set_title(
        {
            "speedup": "Speedup",
            "efficiency": "Efficiency",
            "throughput": "Throughput",
            "split": "Where an iteration's time goes",
        }[kind]
    )
    ax.grid(alpha=0.3)
    return fig


def _spread(value: float, point: Point) -> tuple[float, float]:
    """How far below and above ``value`` (a speedup, efficiency or throughput at the point's
    median time: each goes as 1 / time) it is at the slowest and at the fastest repeat."""
    if not point.fastest or not point.slowest:
        return 0.0, 0.0
    # never below zero: a single repeat's spread is 0 up to the last bit of a product
    return (
        max(0.0, value - value * (point.seconds / point.slowest)),
        max(0.0, value * (point.seconds / point.fastest) - value),
    )


def timeline_plot(curves_: Sequence[Curve]):
    """One iteration per curve, side by side, at the curve's most workers: the driver's lane
    and each worker's, bars by what the time was (its median run's median iteration).

    ``None`` when no run has a timeline (records from before schema 3).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    shown = [(c, p) for c in curves_ for p in c.points[-1:] if p.figures.timeline]
    if not shown:
        return None
    fig = Figure(figsize=(4.2 * len(shown), 3.2), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, (c, p) in zip(axes, shown, strict=True):
        bars = p.figures.timeline["bars"]
        lanes = ["driver", *sorted({b["lane"] for b in bars} - {"driver"})]
        for b in bars:
            y = len(lanes) - 1 - lanes.index(b["lane"])
            ax.broken_barh(
                [(b["start"] * 1e3, (b["end"] - b["start"]) * 1e3)],
                (y - 0.35, 0.7),
                color=_COLOURS[b["kind"]],
            )
        ax.set_yticks(range(len(lanes)), _lane_names(lanes, p.figures.timeline)[::-1])
        clock = "" if c.clock == "measured" else f", {c.clock}"
        ax.set_xlabel(f"ms from the iteration's start{clock}")
        ax.set_title(f"{c.label} x{p.workers}", fontsize="small")
        ax.grid(alpha=0.3, axis="x")
    handles = [
        Patch(color=_COLOURS[kind], label="driver waits on a call" if kind == "wait" else kind)
        for kind in (*PARTS, "wait")
    ]
    # one row of four keys needs two panels' width; one panel gets two rows
    ncols = 4 if len(shown) > 1 else 2
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize="small")
    fig.suptitle("One iteration, where each process spends it")
    return fig


def prediction_plot(title: str, result: dict):
    """``scaling predict --png``: the predicted time per iteration with its terms stacked, and
    the predicted speedup against the ideal, drawn as the report draws modelled numbers."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter, ScalarFormatter

    rows = result["rows"]
    ps = [r["workers"] for r in rows]
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    bottom = [0.0] * len(rows)
    for term in ("compute", "straggle", "communication", "overhead"):
        top = [b + r["terms"][term] for b, r in zip(bottom, rows, strict=True)]
        left.fill_between(
            ps, bottom, top, color=_COLOURS[term], label=f"{term} (modelled)", **_MODELLED
        )
        bottom = top
    left.set(xscale="log", yscale="log", xlabel="workers", ylabel="seconds per iteration")
    left.yaxis.set_major_formatter(EngFormatter(unit="s"))
    left.set_title("Time per iteration, by term (modelled)")
    right.plot(
        ps, [r["speedup"] for r in rows], marker="o", linestyle=":", label="speedup (modelled)"
    )
    right.plot(ps, ps, color="grey", linestyle="--", linewidth=1, label="ideal")
    right.set(xscale="log", yscale="log", xlabel="workers", ylabel="speedup T(1)/T(p)")
    right.set_title("Speedup (modelled)")
    for ax in (left, right):
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.grid(alpha=0.3, which="both")
    fig.legend(loc="outside lower center", fontsize="small", ncols=6)
    fig.suptitle(title)
    return fig


def png(fig) -> bytes:
    """A figure as PNG bytes, at the report's resolution."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _lane_names(lanes: list[str], timeline: dict) -> list[str]:
    """``driver``, ``driver process`` (tasks in the driver's own process), ``worker N``; a
    gang member's lane keeps its rank."""
    names, workers = [], {}
    for lane in lanes:
        process, _, rank = lane.partition("#")
        suffix = f" #{rank}" if rank else ""
        if lane == "driver":
            names.append("driver")
        elif process == timeline.get("driver"):
            names.append(f"driver process{suffix}")
        else:
            workers.setdefault(process, len(workers) + 1)
            names.append(f"worker {workers[process]}{suffix}")
    return names


def _split_bars(ax, curves_: Sequence[Curve]) -> None:
    """Stacked bars of each point's split; a modelled split is hatched and faded, and its
    legend entry says so."""
    labels, points = [], []
    for c in curves_:
        for p in c.points:
            labels.append(f"{c.label}\nx{p.workers}")
            points.append(p)
    x = list(range(len(labels)))
    base = [0.0] * len(labels)
    modelled = [p.figures.modelled("split") for p in points]
    for part in PARTS:
        values = [p.split[part] for p in points]
        for kind in (False, True):
            idx = [i for i in x if modelled[i] == kind]
            if not idx:
                continue
            ax.bar(
                idx,
                [values[i] for i in idx],
                bottom=[base[i] for i in idx],
                label=f"{part} (modelled)" if kind else part,
                color=_COLOURS[part],
                **(_MODELLED if kind else {}),
            )
        base = [b + v for b, v in zip(base, values, strict=True)]
    ax.set_xticks(x, labels, fontsize="small", rotation=30, ha="right")
    ax.figure.legend(loc="outside lower center", fontsize="small", ncols=3)
