"""What users read: run tables, scaling-curve plots (PNG) and a self-contained HTML report."""

from __future__ import annotations

import base64
import html as html_lib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from scaling.errors import UsageError
from scaling.present.figures import (
    PARTS,
    Curve,
    cores_note,
    curve_key,
    curves,
    predict_points,
    reading,
    winners,
)
from scaling.present.plots import PLOTS, plot, png, timeline_plot
from scaling.present.text import summary_rows
from scaling.results import atomic_write, sweep_folder
from scaling.units import si


def write_index(store: str | os.PathLike, records: Sequence[dict]) -> Path:
    """``store/index.html``: the summary table of every curve in ``records`` (as the demo
    prints it), then each sweep, newest first: a thumbnail of its speedup plot linking to its
    report where one was written (``store/SWEEP_ID/report.html``), beside the reading of
    each of its curves."""
    esc = html_lib.escape
    store = Path(store)
    by_sweep: dict[str, list[dict]] = {}
    for r in records:
        by_sweep.setdefault(r["sweep_id"], []).append(r)
    newest_first = sorted(by_sweep, key=lambda s: min(r["started_at"] for r in by_sweep[s]))[::-1]
    ok = [r for s in newest_first for r in by_sweep[s] if r.get("status") == "ok"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Scaling results</title>",
        f"<style>{_CSS}</style></head><body><h1>Scaling results</h1>",
        f"<p class='meta'>{len(by_sweep)} sweeps in {esc(str(store))}</p>",
        *([_table(summary_rows(ok, store)), f"<p class='meta'>{esc(SUMMARY)}</p>"] if ok else []),
    ]
    for sweep_id in newest_first:
        cs = curves([r for r in by_sweep[sweep_id] if r.get("status") == "ok"])
        jobs = ", ".join(sorted({r["job"] for r in by_sweep[sweep_id]}))
        title = esc(f"{jobs} ({sweep_id})")
        folder = sweep_folder(store, sweep_id)
        thumbnail = ""
        if (folder / "report.html").exists():
            href = f"href='{esc(sweep_id)}/report.html'"
            title = f"<a {href}>{title}</a>"
            if (folder / "speedup.png").exists():
                thumbnail = (
                    f"<a {href}><img class='thumb' src='{esc(sweep_id)}/speedup.png' "
                    f"alt='speedup of {esc(jobs)}'></a>"
                )
        readings = (
            "".join(f"<li>{esc(reading(c))}</li>" for c in cs) or "<li>no successful runs</li>"
        )
        parts.append(f"<h2>{title}</h2><div class='sweep'>{thumbnail}<ul>{readings}</ul></div>")
    parts.append("</body></html>")
    path = store / "index.html"
    atomic_write(path, "\n".join(parts).encode())
    return path


SUMMARY = (
    "At the most workers each curve reached: speedup and efficiency against its 1-worker run; "
    "COST: the fewest workers faster than the single-thread baseline (its time per iteration "
    "in brackets); quality: the job's headline measure; best p: the worker count the cost "
    "model predicts fastest, up to 1,024 (`scaling calibrate ENGINE` once for it)."
)
"""What the summary table's columns say: under it in the index, and after it in the demo."""


# ----------------------------------------------------------------------- plots and report


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
    """:func:`scaling.present.figures.winners` as table rows, header first (none: no
    shared cell)."""
    found = winners(cs)
    if not found:
        return []
    head = ("cell", "measured fastest", "s/iter", "predicted fastest (modelled)", "agree")
    return [head] + [
        (
            w["cell"],
            w["measured"],
            f"{w['seconds']:.4f}",
            *_predicted_cells(w),
        )
        for w in found
    ]


def _predicted_cells(w: dict) -> tuple[str, str]:
    """A winner's predicted-fastest and agree cells (modelled)."""
    if w["predicted"] is None:
        return "-", "-"
    if w["tied"]:
        within = f"~{w['predicted']}: {w['margin']:+.0%} apart, within the model's error"
        return within, "cannot tell"
    agree = "yes" if w["predicted"] == w["measured"] else "no"
    return f"~{w['predicted']} (next {w['margin']:+.0%})", agree


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
.sweep { display: flex; gap: 1em; align-items: flex-start; } img.thumb { width: 18em; }
table { border-collapse: collapse; font-size: small; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
"""
