"""Text for a terminal: tables of runs, the demo's summary rows, a job's declared steps and a
predicted curve."""

from __future__ import annotations

import os
from collections.abc import Sequence

from scaling.model.steps import Step, moved, tree_depth
from scaling.present.figures import (
    PARTS,
    cores_note,
    curve_key,
    curves,
    predicted_best,
    run_figures,
)
from scaling.units import seconds, si


def table(records: Sequence[dict]) -> str:
    """A plain-text table, one row per run, with speedup and efficiency from its curve.

    A modelled number is marked ``~`` (see the footnote of :func:`print_table`).
    """
    points = {(*c.key, p.workers): p for c in curves(records) for p in c.points}
    emulated = any(r.get("emulation") for r in records)
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
        *(["clock"] if emulated else []),
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
                    *[""] * (len(header) - 6),
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
                *([f.clock] if emulated else []),
            )
        )
    return text_table(rows, right_from=2, rule=True)


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
    if any(r.get("emulation") for r in records):
        print(
            "emulated (D x): run on a scale model (`scaling cluster start --machines`); its "
            "times and throughput are the modelled cluster's, measured / D and x D, D the "
            "dilation its CPU shares were measured to give."
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


def steps_text(
    job: str, steps: list[Step], rows: int, features: int, workers: int, note: str = ""
) -> str:
    """A table of the steps, then the totals per iteration."""
    lines = [f"{job}: one iteration on {rows:,} rows x {features} features, {workers} workers", ""]
    header = ("step", "function", "where", "work (busiest)", "sends (each)", "what it does")
    rows_ = [header] + [
        (s.kind, s.function, s.where, si(s.flops, "flop"), si(s.sends, "B"), s.does) for s in steps
    ]
    lines.append(text_table(rows_))
    up, down, peer = moved(steps, workers)
    moved_ = f"~{si(up, 'B')} up, ~{si(down, 'B')} down"
    where = f"combine tree depth {tree_depth(workers)}"
    if peer:
        moved_, where = f"~{si(peer, 'B')} peer to peer", "no driver in the loop"
    lines += ["", f"bytes moved per iteration: {moved_} ({where})"]
    if note:
        lines += ["", note]
    return "\n".join(lines)


def prediction_text(title: str, result: dict, assumptions: list[str]) -> str:
    """A predicted curve (:func:`scaling.model.costmodel.summary`) as a table, every line
    marked as modelled, with the fastest count and the model's assumptions."""
    header = (
        "workers",
        "s / iteration",
        "interval",
        "speedup",
        "efficiency",
        "compute",
        "straggle",
        "communication",
        "overhead",
        "dominant",
    )
    table = [header]
    for r in result["rows"]:
        t = r["terms"]
        low, high = r["interval"]
        table.append(
            (
                str(r["workers"]) + (" *" if r["extrapolated"] else ""),
                seconds(r["seconds_per_iteration"]),
                f"{seconds(low)} - {seconds(high)}" if high > low else "",
                f"{r['speedup']:.2f}x",
                f"{r['efficiency']:.0%}",
                seconds(t["compute"]),
                seconds(t["straggle"]),
                seconds(t["communication"]),
                seconds(t["overhead"]),
                r["dominant"],
            )
        )
    under = result["efficiency_under_half_at"]
    lines = [
        f"{title} (modelled, not measured)",
        "",
        text_table(table),
        "",
        "interval: give or take the spread of what it rests on (the samples' iterations, the "
        "engine's empty calls: their quartiles)"
        + (
            "; * beyond the worker counts the calibration measured (below): the engine's "
            "call and links extrapolated"
            if any(r["extrapolated"] for r in result["rows"])
            else ""
        ),
        "",
        f"fastest at {result['best_workers']} workers; "
        + (
            f"efficiency falls under 50% at {under} workers"
            if under
            else "efficiency stays at or above 50% over these worker counts"
        ),
        "",
        "assumptions:",
        *(f"  - {a}" for a in assumptions),
    ]
    return "\n".join(lines)
