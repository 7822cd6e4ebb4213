"""How steady a scale model's dilation is: the reference kernel inside a machine against outside,
one interleaved pair at a time, and the estimator every model records at start, again and again.

    .venv/bin/python benchmarks/dilation.py                    # the recorded run (root)
    .venv/bin/python benchmarks/dilation.py --machines 4 --pairs 6

A scale model of ``--machines`` (:mod:`scaling.run.machines`, no engine on it) times the
reference kernel (:data:`scaling.run.machines.REFERENCE`, k-means' assignment on cached blocks)
inside its first worker machine and outside, in turn, ``--pairs`` times at each of two lengths
(200 and 1,000 rounds, the second five times as many quota periods), each pair's ratio one
reading of D; then :func:`scaling.run.machines.measure_dilation` (the fastest of five pairs each
way: what a model records and every time measured on it is divided by) ``--estimates`` times.
Then each job's own kernel (``--job-pairs``, 0 to leave out): its iteration's compute at the
cost-model table's first shape on a model at 1 machine (``costmodel.EMULATED_SHAPES``, the
first decomposition), timed the same way, one pair at a time, each pair followed by one of the
reference: the job's factor over D, which is 1 where one D fits every kernel.
Writes ``benchmarks/results/dilation.{md,json}`` (a hand-written ``## Reading`` is kept).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, host_line, kept_reading, write_result

from scaling.present.text import text_table
from scaling.run import machines

LENGTHS = (200, 1000)
"""Rounds of the reference kernel per run."""

KERNEL = """
from jobs import get_job
from scaling.engines import make_engine
job = get_job({job!r})
config = job.timed(job.config(**{options!r}), {iterations})
with make_engine("local", 1) as engine:
    ds = engine.load(job.synthetic({rows}, {features}, 0, config))
    job.fit(engine, ds, config)
    print(engine.trace.typical(job.iteration)[1]["compute"])
"""
"""A job's iteration timed as :mod:`scaling.run.sample` times it (in-process, one core, the
median iteration after the first): its compute alone, without imports or data."""


def job_kernels(model, pairs: int) -> dict[str, dict[str, list[float]]]:
    """Per job, each pair's ratio (its kernel inside a machine over outside) and the
    reference's ratio read right after it."""
    from costmodel import EMULATED_OPTIONS, EMULATED_SHAPES, OPTIONS, VARIANTS

    from scaling.engines.worker import THREAD_ENV

    def timed(argv: list[str]) -> float:
        env = {**os.environ, **THREAD_ENV}  # one thread, as a worker
        done = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
        return float(done.stdout.split()[-1])

    out = {}
    for job, shapes in EMULATED_SHAPES.items():
        rows, features, shared = shapes[0]
        options = {**OPTIONS[job], **EMULATED_OPTIONS[job], **shared}
        options |= next(iter(VARIANTS[job].values()))
        code = KERNEL.format(job=job, options=options, iterations=6, rows=rows,
                             features=features)  # fmt: skip
        outside = [sys.executable, "-c", code]
        inside = model.command(model.workers[0], outside)

        kernel, reference = [], []
        for _ in range(pairs):
            kernel.append(timed(inside) / timed(outside))
            reference.append(machines.measure_dilation(model, pairs=1))
        out[job] = {"kernel": kernel, "reference": reference}
        print(
            f"{job}: {statistics.median(kernel):.2f} against D {statistics.median(reference):.2f}"
        )
    return out


def readings(model, pairs: int, estimates: int) -> dict[str, list[float]]:
    """Per kernel length, each pair's ratio; and the start estimator's values."""
    out = {
        f"one pair, {repeat} rounds": [
            machines.measure_dilation(model, repeat, pairs=1) for _ in range(pairs)
        ]
        for repeat in LENGTHS
    }
    out["fastest of 5 pairs (recorded at start)"] = [
        machines.measure_dilation(model) for _ in range(estimates)
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--estimates", type=int, default=6)
    parser.add_argument("--job-pairs", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    model = machines.build(args.machines, 1, "1gbit", measure=False)
    t0 = time.time()
    try:
        found = readings(model, args.pairs, args.estimates)
        kernels = job_kernels(model, args.job_pairs) if args.job_pairs else {}
    finally:
        model.stop()
    table = [("reading", "n", "median", "quartiles", "range")]
    for name, values in found.items():
        q1, median, q3 = statistics.quantiles(values, n=4)
        table.append((name, str(len(values)), f"{median:.2f}", f"{q1:.2f} - {q3:.2f}",
                      f"{min(values):.2f} - {max(values):.2f}"))  # fmt: skip
    command = " ".join(["benchmarks/dilation.py", *sys.argv[1:]])
    lines = [
        "# How steady a scale model's dilation is",
        "",
        f"Command: `.venv/bin/python {command}` ({time.time() - t0:.0f} s)",
        "",
        f"Host: {host_line()}. A scale model of {args.machines} one-core machines and a head: "
        f"nominal D = {model.dilation:.2f} (each machine's quota 1 / D of a core per "
        f"{machines.PERIOD_US // 1000} ms). Each reading is the reference kernel's time inside "
        "a machine over its time on this host, the two run in turn.",
        "",
        "```",
        text_table(table),
        "```",
        "",
        *(_kernels_table(kernels) if kernels else []),
        kept_reading(Path(args.out) / "dilation.md"),
    ]
    record = {"command": command, "nominal": model.dilation, "readings": found, "jobs": kernels}
    write_result(Path(args.out), "dilation", lines, record)
    print("\n".join(lines))


def _kernels_table(kernels: dict) -> list[str]:
    rows = [("job", "its kernel's factor", "D read beside it", "factor / D", "pairs")]
    for job, read in kernels.items():
        k, d = statistics.median(read["kernel"]), statistics.median(read["reference"])
        rows.append((job, f"{k:.2f}", f"{d:.2f}", f"{k / d:.2f}", str(len(read["kernel"]))))
    return [
        "## Each job's own kernel",
        "",
        "Its iteration's compute at the cost-model table's first shape on 1 machine "
        "(`costmodel.EMULATED_SHAPES`, the first decomposition), inside a machine over "
        "outside, one pair at a time, each followed by a pair of the reference kernel; medians:",
        "",
        "```",
        text_table(rows),
        "```",
        "",
    ]


if __name__ == "__main__":
    main()
