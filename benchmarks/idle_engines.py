"""Whether clusters left open and idle move a measurement: the notebooks' every-engine check
keeps its Ray and Spark clusters open (``scaling.present.lab``) while Dask is measured.

    .venv/bin/python benchmarks/idle_engines.py             # the recorded run
    .venv/bin/python benchmarks/idle_engines.py --trials 5

Alternates ``--trials`` pairs of the same Dask sweep (k-means, 200,000 x 16, k = 8, at 1
and 2 workers, ``--repeat`` runs a point), one with nothing else open and one beside an
idle Ray and an idle Spark cluster of 2 workers each (started before, left waiting). Each
trial's figure is the median time per iteration of its runs at a worker count; the table
gives the median over the trials of each condition, their range, and idle / clean. Writes
``benchmarks/results/idle_engines.{md,json}``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from common import RESULTS, host_line, write_result

from jobs import kmeans
from scaling.present import lab
from scaling.run.pool import Clusters

CONDITIONS = ("clean", "idle")


def trial(condition: str, repeat: int, store: str) -> dict[int, float]:
    """One sweep's median seconds per iteration at each worker count."""
    idle = [Clusters() for _ in ("ray", "spark")] if condition == "idle" else []
    for clusters, engine in zip(idle, ("ray", "spark"), strict=False):
        clusters.open(engine, 2, None)
    time.sleep(3 if idle else 0)  # past their start-up: idle, as the notebooks leave them
    try:
        config = kmeans.KMeansConfig(k=8, max_iter=8, tol=0.0)
        records = lab.sweep(
            kmeans.JOB, config, store, "dask", rows=200_000, features=16, repeat=repeat,
            baseline=False,
        )  # fmt: skip
    finally:
        for clusters in idle:
            clusters.close()
    return {
        w: statistics.median(r["timings"]["per_iteration"] for r in records if r["workers"] == w)
        for w in (1, 2)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="pairs of sweeps")
    parser.add_argument("--repeat", type=int, default=3, help="runs a point")
    args = parser.parse_args()
    seen: dict[str, list[dict[int, float]]] = {c: [] for c in CONDITIONS}
    with tempfile.TemporaryDirectory() as store:
        for i in range(args.trials):
            for condition in CONDITIONS:
                seen[condition].append(trial(condition, args.repeat, store))
                print(i, condition, seen[condition][-1], file=sys.stderr, flush=True)
    lines = [
        "# Idle clusters beside a measurement",
        "",
        f"Command: `.venv/bin/python benchmarks/idle_engines.py --trials {args.trials} "
        f"--repeat {args.repeat}`",
        "",
        "k-means on Dask, 200,000 x 16, k = 8, 8 iterations: seconds per iteration, the median "
        f"over {args.trials} trials of each trial's median of {args.repeat} runs (its range in "
        "brackets), with nothing else open (clean) and beside an idle 2-worker Ray and Spark "
        f"cluster (idle), trials alternating. Host: {host_line()}.",
        "",
        "| workers | clean | idle | idle / clean | ranges overlap |",
        "|---|---|---|---|---|",
    ]
    rows = {}
    for w in (1, 2):
        got = {c: [t[w] for t in seen[c]] for c in CONDITIONS}
        median = {c: statistics.median(v) for c, v in got.items()}
        rows[w] = {"trials": got, "median": median}
        cells = [
            f"{median[c] * 1e3:.2f} ms [{min(v) * 1e3:.2f}-{max(v) * 1e3:.2f}]"
            for c, v in got.items()
        ]
        ratio = median["idle"] / median["clean"]
        overlap = min(got["idle"]) <= max(got["clean"]) and min(got["clean"]) <= max(got["idle"])
        lines.append(f"| {w} | {cells[0]} | {cells[1]} | {ratio:.2f} | {overlap} |")
    lines += [
        "",
        "Where the ranges overlap, these trials cannot tell the idle clusters' cost (their "
        "heartbeats, about 10% of one core in all) from this machine's noise.",
    ]
    write_result(RESULTS, "idle_engines", lines, {"args": vars(args), "rows": rows})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
