"""``scaling results``, ``compare`` and ``timeline``: what the store holds, read back."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scaling.errors import UsageError
from scaling.results import DEFAULT_STORE


def cmd_results(args: argparse.Namespace) -> int:
    from scaling.present.text import print_table, text_table
    from scaling.results import load, sweeps

    loaded = load(*args.paths)
    if not loaded.records:
        raise UsageError(
            "; ".join(loaded.problems)
            or f"no records in {', '.join(args.paths or [DEFAULT_STORE])}"
        )
    for problem in loaded.problems:
        print(f"scaling: warning: {problem}", file=sys.stderr)
    if args.runs:
        print_table(loaded.records)
        return 0
    rows = [("sweep", "mode", "jobs", "engines", "workers", "rows", "ok", "failed")]
    for s in sweeps(loaded.records):
        rows.append(
            (
                s["sweep_id"],
                s["mode"],
                ",".join(s["jobs"]),
                ",".join(s["engines"]),
                ",".join(map(str, s["workers"])),
                " ".join(f"{r:,}" for r in s["rows"]),
                str(s["ok"]),
                str(s["failed"]),
            )
        )
    print(text_table(rows))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from scaling.present.report import predicted_curves, winner_rows, write_report
    from scaling.present.text import text_table
    from scaling.results import load, new_sweep_id

    loaded = load(*args.sweeps)
    for problem in loaded.problems:
        print(f"scaling: warning: {problem}", file=sys.stderr)
    if not loaded.records:
        raise UsageError(
            f"no records found in {', '.join(args.sweeps)}; "
            "`scaling results` lists the sweeps in the store"
        )
    report = write_report(
        loaded.records,
        args.report or Path(DEFAULT_STORE) / f"compare-{new_sweep_id()}",
        title=args.title,
        store=DEFAULT_STORE,
    )
    if rows := winner_rows(predicted_curves(loaded.records, DEFAULT_STORE)[0]):
        print(text_table(rows))
    print(f"report: {report}")
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    from scaling.results import artifact, atomic_write, load

    loaded = load(args.store)
    record = next((r for r in loaded.records if r.get("run_id") == args.run_id), None)
    if record is None:
        raise UsageError(
            f"no run {args.run_id!r} in {args.store}; `scaling results --runs {args.store}` "
            "lists the runs (or pass --store DIR)"
        )
    path = artifact(args.store, record, "trace")
    if path is None:
        raise UsageError(
            f"run {args.run_id} has no timeline (a failed run, or recorded before timelines "
            "were); run it again"
        )
    if not path.exists():
        raise UsageError(f"run {args.run_id}'s timeline, {path}, is missing; run it again")
    data = path.read_bytes()
    trace = json.loads(data)
    out = Path(args.out or f"timeline-{args.run_id}.json")
    atomic_write(out, data)
    print(
        f"timeline: {out} ({len(trace['traceEvents'])} events; open it in "
        "https://ui.perfetto.dev or chrome://tracing)"
    )
    return 0
