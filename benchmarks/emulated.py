"""Scaling curves past this host's cores: every job on every engine, on a scale model of
``--machines`` one-core machines (:mod:`scaling.run.machines`), at 1, 2, 4, ... workers.

    .venv/bin/python benchmarks/emulated.py                   # the recorded run (root)
    .venv/bin/python benchmarks/emulated.py --engines dask --cases kmeans

Each case and engine is one ``scaling sweep JOB --emulate N --link RATE --engines E --workers
1,2,4,...,N --no-baseline``, which builds the model, runs the sweep on it (the driver on the head
machine) and removes it. Every time is the modelled cluster's, labelled ``emulated (D x)``.
Writes ``benchmarks/results/emulated-N.md`` (each sweep's table, as ``scaling results`` shows
it) and the records, ``benchmarks/results/emulated-N/CASE-ENGINE.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, host_line, write_result

from scaling.present.figures import run_figures
from scaling.present.text import table
from scaling.results import load

CASES = {
    "kmeans": ["kmeans", "--rows", "1000000", "--features", "32", "--k", "16", "--max-iter",
               "10", "--tol", "0", "--init", "random", "--execution", "driver"],
    "kmeans allreduce": ["kmeans", "--rows", "1000000", "--features", "32", "--k", "16",
                         "--max-iter", "10", "--tol", "0", "--init", "random", "--execution",
                         "allreduce"],
    "logreg": ["logreg", "--rows", "1000000", "--features", "32", "--max-iter", "15", "--tol",
               "1e-12"],
    "sgd": ["sgd", "--rows", "200000", "--max-steps", "40"],
    "xgboost": ["gbdt", "--rows", "400000", "--library", "xgboost", "--rounds", "10"],
    "lightgbm": ["gbdt", "--rows", "400000", "--library", "lightgbm", "--rounds", "10"],
}  # fmt: skip
"""Case -> ``scaling sweep`` arguments: compute-bound sizes, an iteration of about 0.1-0.5 s on
one core, so that 8 machines still have work each."""


def render(args: argparse.Namespace, kept: Path, workers: list[int], failed: list[str]) -> None:
    """``emulated-N.md`` from every record file kept (earlier runs' too), and this run's
    failures; ``emulated-N.json`` lists the commands that made them."""
    meta = Path(args.out) / f"{kept.name}.json"
    commands = json.loads(meta.read_text()).get("commands", []) if meta.exists() else []
    if not args.render:
        commands.append(" ".join(["benchmarks/emulated.py", *sys.argv[1:]]))
    lines = [
        f"# Scaling curves on a scale model of {args.machines} machines",
        "",
        f"Host: {host_line()}. Commands: {', '.join(f'`{c}`' for c in commands)}.",
        f"Each sweep: `scaling sweep JOB --emulate {args.machines} --link {args.link} --engines "
        f"E --workers {','.join(map(str, workers))} --no-baseline` and the case's arguments "
        "(`CASES` in the script): a head and one-core worker machines, each with its share of "
        "this host's CPU and its link slowed by one factor D. Every time and throughput is the "
        "modelled cluster's (measured / D), labelled emulated; speedup against 1 machine.",
    ]
    found = {path.stem: load(path).records for path in sorted(kept.glob("*.jsonl"))}
    lines += ["", "| case | " + " | ".join(f"{w} machines" for w in workers) + " | D |",
              "|---" * (len(workers) + 2) + "|"]  # fmt: skip
    for case, records in found.items():
        seconds = {r["workers"]: run_figures(r).seconds for r in records}
        speedups = [f"{seconds[1] / seconds[w]:.2f}x" if w in seconds else "-" for w in workers]
        d = records[0]["emulation"]["dilation"]
        lines.append(f"| {case} | {' | '.join(speedups)} | {d:.2f} |")
    lines += ["", "Speedup against 1 machine, emulated; D: the dilation measured at start."]
    for case, records in found.items():
        lines += ["", f"## {case}", "", "```", table(records), "```"]
    if failed:
        lines += ["", "## Failed", "", *failed]
    record = {"machines": args.machines, "link": args.link, "commands": commands}
    write_result(args.out, kept.name, lines, record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="dask,ray,spark", help="comma-separated")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, of CASES")
    parser.add_argument("--machines", type=int, default=8)
    parser.add_argument("--link", default="1gbit")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--render", action="store_true", help="only write the table again")
    args = parser.parse_args()
    workers = [1 << i for i in range(args.machines.bit_length()) if 1 << i <= args.machines]
    if workers[-1] != args.machines:
        workers.append(args.machines)
    kept = Path(args.out) / f"emulated-{args.machines}"
    kept.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    if args.render:
        return render(args, kept, workers, failed)
    for engine in args.engines.split(","):
        for case in args.cases.split(","):
            with tempfile.TemporaryDirectory() as store:
                argv = [sys.executable, "-m", "scaling.cli", "sweep", *CASES[case], "--emulate",
                        str(args.machines), "--link", args.link, "--engines", engine,
                        "--workers", ",".join(map(str, workers)), "--no-baseline", "--out",
                        store]  # fmt: skip
                t0 = time.perf_counter()
                done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
                took = time.perf_counter() - t0
                found = sorted(Path(store).glob("*/records.jsonl"))
                if done.returncode != 0 or not found:
                    failed.append(f"- {case}, {engine}: exit {done.returncode}: "
                                  f"{done.stderr.strip()[-300:]}")  # fmt: skip
                else:
                    shutil.copyfile(found[0], kept / f"{case.replace(' ', '-')}-{engine}.jsonl")
                print(f"{case:18} {engine:6} {took:6.0f} s  exit {done.returncode}", flush=True)
    render(args, kept, workers, failed)


if __name__ == "__main__":
    main()
