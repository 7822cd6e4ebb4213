"""The scale model's fidelity: a job on an emulated machine, its time divided by the measured
dilation, against the same job on a real worker of this host (:mod:`scaling.run.machines`).

    .venv/bin/python benchmarks/emulation.py                  # the recorded run (root)
    .venv/bin/python benchmarks/emulation.py --engines dask,ray --trials 3

For every case (k-means and logistic regression in both execution styles, SGD's
driver-allreduce in both and its ring-allreduce, XGBoost and LightGBM data-parallel) and
engine: one worker, **real** (``scaling run JOB --engine E --workers 1``: an embedded cluster,
its driver beside it on this host) against **emulated** (``scaling run JOB --cluster E
--workers 1`` on ``scaling cluster start E --machines 1 --dilation D``: one machine of one core
and a head, each with 1/D of a CPU, the driver on the head). The emulated time is the record's
seconds per iteration divided by the dilation measured at start, as every view shows it. The
pairs are interleaved, ``--trials`` of them; the table gives the medians and emulated / real
(the target: within 10%). Writes ``benchmarks/results/emulation.{md,json}``.

Two or more machines against as many real workers need a host with a core for each and one
for the driver: the same command there, with ``--workers 2`` cases, is the check this 2-core
host cannot make.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

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
    "sgd driver-allreduce, driver": ["sgd", "--rows", "50000", "--strategy", "driver-allreduce",
                                     "--execution", "driver", "--max-steps", "40"],
    "sgd driver-allreduce, allreduce": ["sgd", "--rows", "50000", "--strategy",
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


def seconds(argv: list[str], where: list[str], store: str) -> tuple[float, dict]:
    """One run's seconds per iteration as the views show it (emulated: / D), and its record."""
    done = scaling("run", *argv, *where, "--workers", "1", "--out", store, "--json")
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv + where)}: {done.stderr.strip()[-400:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return run_figures(record).seconds, record


def table(args: argparse.Namespace, rows: list[tuple]) -> list[str]:
    return [
        "# The scale model against real workers (one worker each)",
        "",
        f"Host: {host_line()}. Command: `{' '.join(['benchmarks/emulation.py', *sys.argv[1:]])}`.",
        f"Emulated: one machine of one core and a head at D >= {args.dilation:g}, its time "
        "divided by the dilation measured at start; real: one worker of this host. Medians of "
        f"{args.trials} interleaved pairs, seconds per iteration.",
        "",
        "| engine | case | real | emulated | D measured | emulated / real |",
        "|---|---|---|---|---|---|",
        *(
            f"| {e} | {c} | {r * 1e3:.2f} ms | {m * 1e3:.2f} ms | {d:.2f} | {x:.2f}x |"
            for e, c, r, m, d, x in rows
        ),
        "",
        f"Within 10%: {sum(abs(x - 1) <= 0.10 for *_, x in rows)} of {len(rows)} cases; median "
        f"|emulated / real - 1| = {statistics.median(abs(x - 1) for *_, x in rows):.1%}.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="dask", help="comma-separated (dask)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, of CASES")
    parser.add_argument("--trials", type=int, default=3, help="interleaved pairs a case")
    parser.add_argument("--dilation", type=float, default=2.0, help="D of the scale model")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    cases = args.cases.split(",")
    rows, raw = [], []
    for engine in args.engines.split(","):
        started = scaling("cluster", "start", engine, "--machines", "1", "--dilation",
                          str(args.dilation))  # fmt: skip
        if started.returncode != 0:
            raise SystemExit(started.stderr.strip())
        print(started.stdout.strip(), flush=True)
        try:
            with tempfile.TemporaryDirectory() as store:
                for case in cases:
                    real, emulated, d = [], [], []
                    for _ in range(args.trials):
                        real.append(seconds(CASES[case], ["--engine", engine], store)[0])
                        s, record = seconds(CASES[case], ["--cluster", engine], store)
                        emulated.append(s)
                        d.append(record["emulation"]["dilation"])
                    r, e = statistics.median(real), statistics.median(emulated)
                    rows.append((engine, case, r, e, statistics.median(d), e / r))
                    raw.append({"engine": engine, "case": case, "argv": CASES[case],
                                "real": real, "emulated": emulated, "dilation": d})  # fmt: skip
                    print(f"{engine:6} {case:32} real {r * 1e3:8.2f} ms  emulated "
                          f"{e * 1e3:8.2f} ms  {e / r:5.2f}x", flush=True)  # fmt: skip
                    record = {"dilation": args.dilation, "runs": raw}
                    write_result(args.out, "emulation", table(args, rows), record)
        finally:
            scaling("cluster", "stop", engine)
    print("\n".join(table(args, rows)))


if __name__ == "__main__":
    main()
