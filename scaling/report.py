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
from scaling.figures import PARTS, Curve, curves, reading, size_of
from scaling.results import atomic_write


def table(records: Sequence[dict]) -> str:
    """A plain-text table, one row per run, with speedup and efficiency from its curve."""
    points = {
        (c.sweep_id, c.job, c.engine, c.mode, c.size, c.features, p.workers): p
        for c in curves(records)
        for p in c.points
    }
    header = (
        "job",
        "engine",
        "workers",
        "rows",
        "s/iter",
        "rows/s",
        "speedup",
        "effic.",
        "compute",
        "comm.",
        "overhead",
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
                    *[""] * 7,
                )
            )
            continue
        t = r["timings"]["per_iteration"]
        p = points[
            (
                r["sweep_id"],
                r["job"],
                r["engine"],
                r["mode"],
                size_of(r),
                r["features"],
                r["workers"],
            )
        ]
        quality = next(iter(r["quality"].items()), ("", ""))
        rows.append(
            (
                r["job"],
                r["engine"],
                str(r["workers"]),
                f"{r['rows']:,}",
                f"{t:.4f}",
                f"{r['throughput']['rows_per_s']:,.0f}",
                "-" if p.speedup is None else f"{p.speedup:.2f}x",
                "-" if p.efficiency is None else f"{p.efficiency:.0%}",
                *(f"{r['split'][part] / t:.0%}" if t else "-" for part in PARTS),
                str(r["quality"].get("n_iter", "")),
                f"{quality[0]}={quality[1]:.6g}",
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
        "per-call cost."
    )


# ----------------------------------------------------------------------- plots and report

PLOTS = ("speedup", "efficiency", "throughput", "split")
_COLOURS = {"compute": "#4C72B0", "communication": "#DD8452", "overhead": "#C44E52"}


def plot(kind: str, curves_: Sequence[Curve]):
    """One matplotlib Figure of ``kind`` (one of :data:`PLOTS`), one line per curve."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    weak = all(c.mode == "weak" for c in curves_)
    if kind == "split":
        _split_bars(ax, curves_)
    else:
        for c in curves_:
            pts = [p for p in c.points if kind == "throughput" or p.speedup is not None]
            y = [p.rows_per_s if kind == "throughput" else getattr(p, kind) for p in pts]
            ax.plot([p.workers for p in pts], y, marker="o", label=c.label)
        workers = sorted({p.workers for c in curves_ for p in c.points})
        if kind == "speedup":
            ax.plot(workers, workers, "k--", linewidth=1, label="ideal")
        elif kind == "efficiency":
            ax.axhline(1.0, color="k", linestyle="--", linewidth=1, label="ideal")
            ax.set_ylim(0, max(1.1, ax.get_ylim()[1]))
        ax.set_xticks(workers)
        ax.set_xlabel("workers")
        ax.legend(fontsize="small")
    ax.set_ylabel(
        {
            "speedup": "speedup T(1)/T(p)",
            "efficiency": "weak-scaling efficiency T(1)/T(p)" if weak else "efficiency S(p)/p",
            "throughput": "rows per second",
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


def _split_bars(ax, curves_: Sequence[Curve]) -> None:
    labels, bottoms = [], []
    for c in curves_:
        for p in c.points:
            labels.append(f"{c.label}\nx{p.workers}")
            bottoms.append(p.split)
    x = range(len(labels))
    base = [0.0] * len(labels)
    for part in PARTS:
        values = [s[part] for s in bottoms]
        ax.bar(x, values, bottom=base, label=part, color=_COLOURS[part])
        base = [b + v for b, v in zip(base, values, strict=True)]
    ax.set_xticks(list(x), labels, fontsize="x-small", rotation=45, ha="right")
    ax.legend(fontsize="small")


def write_report(
    records: Sequence[dict], directory: str | os.PathLike, title: str = "Scaling report"
) -> Path:
    """Plots (PNG) and one self-contained HTML file (plots embedded) for these records.

    Returns the path of the HTML file, ``directory/report.html``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cs = curves(records)
    if not cs:
        raise UsageError("no successful runs to report on; run a sweep first")
    images = {}
    for kind in PLOTS:
        buffer = io.BytesIO()
        plot(kind, cs).savefig(buffer, format="png", dpi=110)
        images[kind] = buffer.getvalue()
        atomic_write(directory / f"{kind}.png", images[kind])
    html = _html(title, records, cs, images)
    path = directory / "report.html"
    atomic_write(path, html.encode())
    return path


def _html(
    title: str, records: Sequence[dict], cs: Sequence[Curve], images: dict[str, bytes]
) -> str:
    esc = html_lib.escape
    failed = [r for r in records if r.get("status") != "ok"]
    hosts = {json.dumps(r["host"], sort_keys=True) for r in records if "host" in r}
    sweeps_ = sorted({r["sweep_id"] for r in records})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='meta'>sweeps: {esc(', '.join(sweeps_))} &middot; "
        f"{len(records) - len(failed)} runs ok, {len(failed)} failed</p>",
        "<h2>Reading</h2><ul>",
        *(f"<li>{esc(reading(c))}</li>" for c in cs),
        "</ul><h2>Plots</h2><div class='plots'>",
        *(
            f"<figure id='{k}'><img alt='{k}' src='data:image/png;base64,"
            f"{base64.b64encode(v).decode()}'><figcaption>{k}.png</figcaption></figure>"
            for k, v in images.items()
        ),
        "</div><h2>Points</h2>",
        _points_table(cs),
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
    parts += ["<h2>Hosts</h2>", *(f"<pre>{esc(h)}</pre>" for h in sorted(hosts)), "</body></html>"]
    return "\n".join(parts)


def _points_table(cs: Sequence[Curve]) -> str:
    head = (
        "curve",
        "workers",
        "repeats",
        "s/iter",
        "rows/s",
        "speedup",
        "efficiency",
        "compute",
        "comm.",
        "overhead",
        "COST",
    )
    rows = []
    for c in cs:
        cost = "" if c.baseline is None else (f"{c.cost}" if c.cost else "not reached")
        for p in c.points:
            rows.append(
                (
                    c.label,
                    p.workers,
                    p.repeats,
                    f"{p.seconds:.4f}",
                    f"{p.rows_per_s:,.0f}",
                    "-" if p.speedup is None else f"{p.speedup:.2f}",
                    "-" if p.efficiency is None else f"{p.efficiency:.0%}",
                    *(f"{p.split[k] * 1e3:.1f} ms" for k in PARTS),
                    cost if p is c.points[0] else "",
                )
            )
    cells = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html_lib.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
.meta { color: #666; } .plots { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } img { max-width: 34em; } figcaption { color: #666; font-size: small; }
table { border-collapse: collapse; font-size: small; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
"""
