"""What users read: run tables, scaling-curve plots (PNG) and a self-contained HTML report."""

from __future__ import annotations

import base64
import html as html_lib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

from scaling.errors import UsageError
from scaling.present.figures import (
    PARTS,
    Curve,
    Point,
    cores_note,
    curve_key,
    curves,
    predict_points,
    predicted_best,
    reading,
    run_figures,
    winners,
)
from scaling.results import atomic_write, sweep_folder


def table(records: Sequence[dict]) -> str:
    """A plain-text table, one row per run, with speedup and efficiency from its curve.

    A modelled number is marked ``~`` (see the footnote of :func:`print_table`).
    """
    points = {(*c.key, p.workers): p for c in curves(records) for p in c.points}
    header = (
        "job",
        "engine",
        "workers",
        "rows",
        "s/iter",
        "throughput",
        "speedup",
        "effic.",
        "compute",
        "comm.",
        "overhead",
        "bytes/iter",
        "iters",
        "quality",
    )
    rows = [header]
    for r in records:
        if r["engine"] == "baseline":
            continue
        if r["status"] != "ok":
            rows.append(
                (
                    r["job"],
                    r["engine"],
                    str(r["workers"]),
                    f"{r['rows']:,}",
                    "failed:",
                    r.get("error", "")[:60],
                    *[""] * 8,
                )
            )
            continue
        f = run_figures(r)
        p = points[(*curve_key(r), r["workers"])]
        split_mark = "~" if f.modelled("split") else ""
        rows.append(
            (
                r["job"],
                r["engine"],
                str(r["workers"]),
                f"{r['rows']:,}",
                f"{f.seconds:.4f}",
                f"{f.throughput:,.0f} {f.unit}" if f.throughput is not None else "-",
                "-" if p.speedup is None else f"{p.speedup:.2f}x",
                "-" if p.efficiency is None else f"{p.efficiency:.0%}",
                *(
                    "-" if f.share(part) is None else f"{split_mark}{f.share(part):.0%}"
                    for part in PARTS
                ),
                ("~" if f.modelled("bytes") else "") + si(f.bytes, "B"),
                str(f.iterations),
                _quality(f.headline, ".6g"),
            )
        )
    return text_table(rows, right_from=2, rule=True)


def si(value: float, unit: str) -> str:
    """``value`` with an SI prefix: ``16.6 kB``, ``1.2 Mflop``."""
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.1f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def text_table(
    rows: Sequence[Sequence[str]], right_from: int | None = None, rule: bool = False
) -> str:
    """Columns padded to their widest cell; right-aligned from column ``right_from`` on, and a
    rule of dashes under the header when ``rule``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = (
            c.rjust(w) if right_from is not None and i >= right_from else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "  ".join(cells).rstrip()

    lines = [line(row) for row in rows]
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(records: Sequence[dict]) -> None:
    print(table(records))
    print(
        "\ns/iter: median wall time of one iteration (after a warm-up one); speedup and "
        "efficiency against the 1-worker run on the same engine; compute/comm./overhead: "
        "share of an iteration spent computing in tasks, moving data, and in the engine's "
        "per-call cost; bytes/iter: sent and received per iteration, all workers. ~ marks a "
        "modelled number (the algorithm's formula), not a measurement."
    )
    note = cores_note(records)
    if note:
        print(f"\n{note}")


def failure_lines(records: Sequence[dict]) -> list[str]:
    """A line per worker lost in these runs, from their records: when the engine knew, what
    it did, what it cost."""
    lines = []
    for r in records:
        for f in r.get("failures", []):
            took = [
                *([f"known after {f['detected']:.2f} s"] if f["detected"] is not None else []),
                *([f"recovered in {f['recovery']:.2f} s"] if f["recovery"] is not None else []),
            ]
            lines.append(
                f"{r['engine']} x{r['workers']}: a worker was lost during {f['op']} "
                f"({f['error']}); {f['how']}" + (f" ({', '.join(took)})" if took else "")
            )
    return ["", *lines] if lines else []


def _quality(headline: tuple, digits: str) -> str:
    """``name=value`` of a run's headline quality, a number to ``digits`` (a format spec)."""
    name, value = headline
    return f"{name}={value:{digits}}" if isinstance(value, int | float) else f"{name}={value}"


def summary_rows(records: Sequence[dict], store: str | os.PathLike | None = None) -> list[tuple]:
    """One row per curve (job, engine, execution, size): its speedup and efficiency at its
    most workers, COST beside the single-thread baseline's time, its headline quality there,
    and the worker count the cost model predicts fastest (where ``store`` holds the engine's
    calibration). Header first."""
    rows = [
        (
            "job",
            "engine",
            "execution",
            "rows",
            "workers",
            "speedup",
            "effic.",
            "COST (baseline s/iter)",
            "quality",
            "best p (modelled)",
        )
    ]
    first = {}  # the sweeps in the order their records come (the demo's: its jobs' order)
    for i, r in enumerate(records):
        first.setdefault(r["sweep_id"], i)
    for c in sorted(curves(records), key=lambda c: first[c.sweep_id]):
        best = predicted_best(c, records, store) if store is not None else None
        last = c.points[-1]
        cost = "-"
        if c.baseline is not None:
            cost = f"{c.cost or 'not reached'} ({c.baseline:.4f} s)"
        rows.append(
            (
                c.job,
                c.engine,
                c.execution,
                f"{c.size:,}",
                str(last.workers),
                "-" if last.speedup is None else f"{last.speedup:.2f}x",
                "-" if last.efficiency is None else f"{last.efficiency:.0%}",
                cost,
                _quality(last.figures.headline, ".4g"),
                "-" if best is None else f"~{best}",
            )
        )
    return rows


def write_index(store: str | os.PathLike, records: Sequence[dict]) -> Path:
    """``store/index.html``: every sweep in ``records`` with the reading of each of its curves
    and a link to its report where one was written (``store/SWEEP_ID/report.html``)."""
    esc = html_lib.escape
    store = Path(store)
    by_sweep: dict[str, list[dict]] = {}
    for r in records:
        by_sweep.setdefault(r["sweep_id"], []).append(r)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Scaling results</title>",
        f"<style>{_CSS}</style></head><body><h1>Scaling results</h1>",
        f"<p class='meta'>{len(by_sweep)} sweeps in {esc(str(store))}</p>",
    ]
    newest_first = sorted(by_sweep, key=lambda s: min(r["started_at"] for r in by_sweep[s]))[::-1]
    for sweep_id in newest_first:
        runs = [r for r in by_sweep[sweep_id] if r.get("status") == "ok"]
        cs = curves(runs)
        jobs = ", ".join(sorted({r["job"] for r in by_sweep[sweep_id]}))
        report = sweep_folder(store, sweep_id) / "report.html"
        title = esc(f"{jobs} ({sweep_id})")
        link = f"<a href='{esc(sweep_id)}/report.html'>{title}</a>"
        parts += [
            f"<h2>{link if report.exists() else title}</h2><ul>",
            *(f"<li>{esc(reading(c))}</li>" for c in cs),
            "</ul>" if cs else "<li>no successful runs</li></ul>",
        ]
    parts.append("</body></html>")
    path = store / "index.html"
    atomic_write(path, "\n".join(parts).encode())
    return path


# ----------------------------------------------------------------------- plots and report

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
    return (
        value - value * point.seconds / point.slowest,
        value * point.seconds / point.fastest - value,
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
        ax.set_xlabel("ms from the iteration's start")
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


def predicted_curves(
    records: Sequence[dict], store: str | os.PathLike | None
) -> tuple[list[Curve], str | None]:
    """The records' curves, with predicted points where ``store`` holds a calibration, and a
    line on what was predicted (``None``: nothing)."""
    cs = curves(records)
    if not cs:
        raise UsageError("no successful runs to report on; run a sweep first")
    return cs, predict_points(cs, records, store) if store is not None else None


def write_report(
    records: Sequence[dict],
    directory: str | os.PathLike,
    title: str = "Scaling report",
    store: str | os.PathLike | None = None,
) -> Path:
    """Plots (PNG) and one self-contained HTML file (plots embedded) for these records;
    predicted times beside the measured ones where ``store`` holds a calibration.

    Returns the path of the HTML file, ``directory/report.html``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cs, modelled = predicted_curves(records, store)
    images = {}
    figures = {kind: plot(kind, cs) for kind in PLOTS}
    figures["timeline"] = timeline_plot(cs)
    for kind, fig in figures.items():
        if fig is None:
            continue
        images[kind] = png(fig)
        atomic_write(directory / f"{kind}.png", images[kind])
    html = _html(title, records, cs, images, modelled)
    path = directory / "report.html"
    atomic_write(path, html.encode())
    return path


def _html(
    title: str,
    records: Sequence[dict],
    cs: Sequence[Curve],
    images: dict[str, bytes],
    modelled: str | None = None,
) -> str:
    esc = html_lib.escape
    failed = [r for r in records if r.get("status") != "ok"]
    baselines = sum(r["engine"] == "baseline" and r.get("status") == "ok" for r in records)
    hosts = {json.dumps(r["host"], sort_keys=True) for r in records if "host" in r}
    host_rows = [("hostname", "cores", "memory (GiB)", "CPU", "platform")] + [
        tuple(h.get(k, "") for k in ("hostname", "cores", "memory_gib", "cpu", "platform"))
        for h in map(json.loads, sorted(hosts))
    ]
    sweeps_ = sorted({r["sweep_id"] for r in records})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='meta'>sweeps: {esc(', '.join(sweeps_))} &middot; "
        f"{len(records) - len(failed) - baselines} runs ok, {len(failed)} failed"
        f"{' (and the single-thread baseline)' if baselines else ''}</p>",
        _table(_run_rows(cs, records)),
        "<h2>Reading</h2><ul>",
        *(f"<li>{esc(reading(c))}</li>" for c in cs),
        "</ul>",
        *([f"<p class='note'>{esc(note)}</p>"] if (note := cores_note(records)) else []),
        "<h2>Plots</h2><div class='plots'>",
        *(_figure(k, v) for k, v in images.items() if k != "timeline"),
        "</div>",
    ]
    if "timeline" in images:
        parts += [
            "<h2>One iteration on each engine</h2><p class='meta'>The median iteration of each "
            "curve at its most workers, on one clock: where the driver waits, where tasks run "
            "and queue, where the combine runs. <code>scaling timeline RUN_ID</code> writes a "
            "whole run for Perfetto.</p>",
            _figure("timeline", images["timeline"], wide=True),
        ]
    if rows := winner_rows(cs):
        parts += [
            "<h2>Fastest per cell</h2><p class='meta'>Where several curves share a job, "
            "engine, shape and worker count: the one measured fastest, and the one the cost "
            "model predicts fastest (~, modelled).</p>",
            _table(rows),
        ]
    parts += [
        "<h2>Points</h2>",
        _points_table(cs),
        "<p class='meta'>~ marks a modelled number (the algorithm's formula), not a "
        f"measurement.{' ' + esc(modelled) if modelled else ''}</p>"
        "<h2>Where the numbers come from</h2>",
        _sources_table(cs),
    ]
    if failed:
        parts += [
            "<h2>Failed runs</h2><table><tr><th>engine</th><th>workers</th><th>rows</th>"
            "<th>error</th></tr>",
            *(
                f"<tr><td>{esc(r['engine'])}</td><td>{r['workers']}</td>"
                f"<td>{r['rows']:,}</td><td>{esc(r.get('error', ''))}</td></tr>"
                for r in failed
            ),
            "</table>",
        ]
    parts += ["<h2>Hosts</h2>", _table(host_rows), "</body></html>"]
    return "\n".join(parts)


def _run_rows(cs: Sequence[Curve], records: Sequence[dict]) -> list[tuple]:
    """What each curve ran: its shape, the job's options and the versions, header first."""
    from scaling.run import cluster

    first = {curve_key(r): r for r in reversed(records) if r.get("status") == "ok"}
    attached = any(first[c.key].get("address") for c in cs)
    rows = [("curve", "job", "scaling", "rows", "features", "options", "versions")]
    rows[0] += ("cluster",) * attached
    for c in cs:
        r = first[c.key]
        versions = r.get("versions", {})
        shown = ["python", c.engine, *sorted(versions.keys() - {"python", c.engine})]
        row = (
            c.label,
            c.job,
            c.mode,
            f"{c.size:,}" + (" per worker" if c.mode == "weak" else ""),
            c.features,
            ", ".join(f"{k}={v}" for k, v in r.get("config", {}).items()),
            ", ".join(f"{k} {versions[k]}" for k in shown if k in versions),
        )
        if attached:  # its dashboards while the cluster lives
            live = r.get("address") and cluster.find(r["address"])
            where = r.get("address") or "embedded"
            row += (", ".join([where, *live.dashboards.values()]) if live else where,)
        rows.append(row)
    return rows


def _figure(kind: str, png: bytes, wide: bool = False) -> str:
    style = " class='wide'" if wide else ""
    return (
        f"<figure id='{kind}'><img{style} alt='{kind}' src='data:image/png;base64,"
        f"{base64.b64encode(png).decode()}'><figcaption>{kind}.png</figcaption></figure>"
    )


def _points_table(cs: Sequence[Curve]) -> str:
    head = (
        "curve",
        "workers",
        "repeats",
        "s/iter",
        "throughput",
        "speedup",
        "efficiency",
        "compute",
        "comm.",
        "overhead",
        "bytes/iter",
        "predicted s/iter (modelled)",
        "COST",
    )
    rows = []
    for c in cs:
        cost = ""
        if c.baseline is not None:
            cost = f"{c.cost or 'not reached'} (baseline {c.baseline:.4f} s/iter)"
        for p in c.points:
            split_mark = "~" if p.figures.modelled("split") else ""
            rows.append(
                (
                    c.label,
                    p.workers,
                    p.repeats,
                    f"{p.seconds:.4f}",
                    f"{p.throughput:,.0f} {c.unit}",
                    "-" if p.speedup is None else f"{p.speedup:.2f}",
                    "-" if p.efficiency is None else f"{p.efficiency:.0%}",
                    *(f"{split_mark}{p.split[k] * 1e3:.1f} ms" for k in PARTS),
                    ("~" if p.figures.modelled("bytes") else "") + si(p.figures.bytes, "B"),
                    "-"
                    if p.predicted is None
                    else f"~{p.predicted:.4f} ({p.predicted / p.seconds - 1:+.0%})",
                    cost if p is c.points[0] else "",
                )
            )
    return _table([head, *rows])


def _table(rows: Sequence[Sequence]) -> str:
    """An HTML table: the first row is the header."""
    cells = "".join(f"<th>{html_lib.escape(str(h))}</th>" for h in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html_lib.escape(str(v))}</td>" for v in r) + "</tr>"
        for r in rows[1:]
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def winner_rows(cs: Sequence[Curve]) -> list[tuple]:
    """:func:`scaling.present.figures.winners` as table rows, header first (none: no shared cell)."""
    found = winners(cs)
    if not found:
        return []
    head = ("cell", "measured fastest", "s/iter", "predicted fastest (modelled)", "agree")
    return [head] + [
        (
            w["cell"],
            w["measured"],
            f"{w['seconds']:.4f}",
            "-" if w["predicted"] is None else f"~{w['predicted']}",
            "-" if w["predicted"] is None else ("yes" if w["predicted"] == w["measured"] else "no"),
        )
        for w in found
    ]


def _sources_table(cs: Sequence[Curve]) -> str:
    """For each curve, how its split and its bytes were obtained."""
    esc = html_lib.escape
    seen: dict[tuple[str, str], list[str]] = {}
    for c in cs:
        for p in c.points:
            key = (p.figures.sources.get("split", "?"), p.figures.sources.get("bytes", "?"))
            if c.label not in seen.setdefault(key, []):
                seen[key].append(c.label)
    body = "".join(
        f"<tr><td>{esc(', '.join(labels))}</td><td>{esc(split)}</td><td>{esc(nbytes)}</td></tr>"
        for (split, nbytes), labels in seen.items()
    )
    return (
        "<table><tr><th>curves</th><th>compute / comm. / overhead</th><th>bytes</th></tr>"
        f"{body}</table>"
    )


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
.note { background: #fff4d6; padding: 0.4em 0.8em; }
.meta { color: #666; } .plots { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } img { max-width: 34em; } img.wide { max-width: 100%; }
figcaption { color: #666; font-size: small; }
table { border-collapse: collapse; font-size: small; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
"""
