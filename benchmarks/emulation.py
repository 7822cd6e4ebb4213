"""The scale model's fidelity: a job on an emulated machine, its time divided by the measured
dilation, against the same job on a real worker of this host (:mod:`scaling.run.machines`).

    .venv/bin/python benchmarks/emulation.py                  # the recorded run (root)
    .venv/bin/python benchmarks/emulation.py --engines dask,ray --trials 3

For every case (k-means and logistic regression in both execution styles, SGD's
driver-allreduce in both and its ring-allreduce, XGBoost and LightGBM data-parallel) and
engine, one worker three ways (``scaling run JOB ... --workers 1``):

- **host**: an embedded cluster (``--engine E``), its driver and daemons beside the worker on
  this host, every process free to use any core;
- **1 core**: a real one-core worker, ``--cluster E`` on ``scaling cluster start E --machines 1
  --dilation 1``: the worker machine and the head (driver and daemons) each held to one whole
  core (a quota of the full period), no dilation: the machine the scale model models;
- **emulated**: the same at ``--dilation D``, each with 1/D of a core and its link at 1/D,
  its time divided by the dilation measured at start, as every view shows it.

Emulated against 1 core is the scale model's fidelity (the target: within 10%); 1 core against
host is what confining a worker to one core costs, which a model of one-core machines shows
too. The three run in turn, ``--trials`` times; the table gives medians. Writes
``benchmarks/results/emulation.{md,json}``.

Two or more machines against as many real workers need a host with a core for each and one
for the driver: the same command there, with ``--workers 2`` cases, is the check this 2-core
host cannot make.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS, host_line, write_result

from scaling.present.figures import run_figures

CASES = {
    "kmeans driver": ["kmeans", "--rows", "200000", "--features", "32", "--k", "16",
                      "--max-iter", "10", "--tol", "0", "--init", "random",
                      "--execution", "driver"],
    "kmeans allreduce": ["kmeans", "--rows", "200000", "--features", "32", "--k", "16",
                         "--max-iter", "10", "--tol", "0", "--init", "random",
                         "--execution", "allreduce"],
    "logreg driver": ["logreg", "--rows", "200000", "--features", "32", "--max-iter", "15",
                      "--tol", "1e-12", "--execution", "driver"],
    "logreg allreduce": ["logreg", "--rows", "200000", "--features", "32", "--max-iter", "15",
                         "--tol", "1e-12", "--execution", "allreduce"],
    "sgd driver-allreduce driver": ["sgd", "--rows", "50000", "--strategy", "driver-allreduce",
                                     "--execution", "driver", "--max-steps", "40"],
    "sgd driver-allreduce allreduce": ["sgd", "--rows", "50000", "--strategy",
                                        "driver-allreduce", "--execution", "allreduce",
                                        "--max-steps", "40"],
    "sgd ring-allreduce": ["sgd", "--rows", "50000", "--strategy", "ring-allreduce",
                           "--max-steps", "40"],
    "xgboost data": ["gbdt", "--rows", "100000", "--library", "xgboost", "--rounds", "20"],
    "lightgbm data": ["gbdt", "--rows", "100000", "--library", "lightgbm", "--rounds", "20"],
}  # fmt: skip
"""Case -> ``scaling run`` arguments: one of each job's decompositions and execution styles,
sized so that an iteration takes tens of milliseconds on one core."""


def scaling(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scaling.cli", *argv], capture_output=True, text=True, timeout=900
    )


def seconds(argv: list[str], where: list[str], store: str) -> tuple[float, float]:
    """One run's seconds per iteration as the views show it (emulated: / D), and the
    dilation measured for it (1 off a scale model)."""
    done = scaling("run", *argv, *where, "--workers", "1", "--out", store, "--json")
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv + where)}: {done.stderr.strip()[-400:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return run_figures(record).seconds, (record.get("emulation") or {}).get("dilation", 1.0)


@contextlib.contextmanager
def model(engine: str, dilation: float):
    """A scale model of one machine of one core, at ``dilation``, while in the block."""
    started = scaling("cluster", "start", engine, "--machines", "1", "--dilation", str(dilation))
    if started.returncode != 0:
        raise SystemExit(started.stderr.strip())
    print(started.stdout.strip(), flush=True)
    try:
        yield
    finally:
        scaling("cluster", "stop", engine)


def table(args: argparse.Namespace, rows: list[dict]) -> list[str]:
    ms = "{:.2f} ms".format
    return [
        "# The scale model against real workers (one worker each)",
        "",
        f"Host: {host_line()}. Command: `{args.command}`.",
        "Seconds per iteration, medians of "
        f"{args.trials} trials, the three in turn: **host**, one worker of an embedded cluster "
        "on this host (any core); **1 core**, a real one-core worker (a machine of a scale "
        "model at D = 1: the worker and the head each held to one whole core); **emulated**, "
        f"the same at D >= {args.dilation:g}, its time divided by the dilation measured at "
        "start (1 core: its raw time). Emulated / 1 core is the scale model's fidelity.",
        "",
        "| engine | case | host | 1 core | emulated | D measured | emulated / 1 core "
        "| 1 core / host |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['engine']} | {r['case']} | {ms(r['host'] * 1e3)} | {ms(r['core'] * 1e3)} | "
            f"{ms(r['emulated'] * 1e3)} | {r['dilation']:.2f} | "
            f"{r['emulated'] / r['core']:.2f}x | {r['core'] / r['host']:.2f}x |"
            for r in rows
        ),
        "",
        f"Within 10% of one core: {sum(abs(r['emulated'] / r['core'] - 1) <= 0.10 for r in rows)}"
        f" of {len(rows)} cases; median |emulated / 1 core - 1| = "
        f"{statistics.median(abs(r['emulated'] / r['core'] - 1) for r in rows):.1%}.",
    ]


def summarise(runs: dict, engines: list[str], cases: list[str]) -> list[dict]:
    """One row per engine and case: the medians of each way. A one-core machine's time is its
    raw seconds: at D = 1 its quota slows nothing, and dividing by a dilation measured near 1
    would only add that measurement's noise."""

    def median(engine: str, case: str, way: str) -> float:
        got = runs[f"{engine}|{case}|{way}"]
        return statistics.median(s * d if way == "core" else s for s, d in got)

    return [
        {"engine": e, "case": c, **{w: median(e, c, w) for w in ("host", "core", "emulated")},
         "dilation": statistics.median(d for _, d in runs[f"{e}|{c}|emulated"])}
        for e in engines
        for c in cases
        if f"{e}|{c}|emulated" in runs
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="dask", help="comma-separated (dask)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, of CASES")
    parser.add_argument("--trials", type=int, default=3, help="rounds of the three ways")
    parser.add_argument("--dilation", type=float, default=2.0, help="D of the scale model")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--render", action="store_true", help="only write the table again")
    args = parser.parse_args()
    engines, cases = args.engines.split(","), args.cases.split(",")
    if args.render:
        record = json.loads((Path(args.out) / "emulation.json").read_text())
        args.trials, args.command = record["trials"], record["command"]
        rows = summarise(record["runs"], engines, cases)
        return write_result(args.out, "emulation", table(args, rows), record)
    args.command = " ".join(["benchmarks/emulation.py", *sys.argv[1:]])
    runs = {}  # "engine|case|way" -> [(seconds as shown, dilation measured)]
    with tempfile.TemporaryDirectory() as store:
        for engine in engines:
            for trial in range(args.trials):
                for way, where in (("host", None), ("core", 1.0), ("emulated", args.dilation)):
                    with model(engine, where) if where else contextlib.nullcontext():
                        flag = ["--cluster" if where else "--engine", engine]
                        for case in cases:
                            got = seconds(CASES[case], flag, store)
                            runs.setdefault(f"{engine}|{case}|{way}", []).append(got)
                            print(f"{trial} {way:8} {engine:6} {case:32} {got[0] * 1e3:8.2f} ms",
                                  flush=True)  # fmt: skip
            rows = summarise(runs, engines, cases)
            record = {"dilation": args.dilation, "trials": args.trials, "command": args.command,
                      "argv": {c: CASES[c] for c in cases}, "runs": runs}  # fmt: skip
            write_result(args.out, "emulation", table(args, rows), record)
    print("\n".join(table(args, rows)))


if __name__ == "__main__":
    main()
