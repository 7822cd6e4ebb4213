"""What a synchronisation after equal work costs beyond the work: on this host's own workers
and on a scale model's machines, whose CPU is a quota per period (:mod:`scaling.run.machines`).

    .venv/bin/python benchmarks/barrier.py                    # the recorded run (root)
    .venv/bin/python benchmarks/barrier.py --machines 4 --workers 2,4

A gang of p Dask workers (the all-reduce mesh, :mod:`scaling.collectives.allreduce`) runs
iterations of ``k`` products of 256 x 256 matrices on every member, then an all-reduce of one
number, for k in ``PRODUCTS``. Per iteration the **excess** is its wall time less the median
member's own compute (both on the members' clocks); the table gives medians over iterations
and their quartiles. At k = 0 it is the empty iteration the cost model's calibration measures
(``gang_iteration``); what work adds to it is what the model's straggle term stands for (the
slowest member of p, here of equal tasks).

**host**: an embedded cluster of p workers on this host (p <= its cores; the driver shares
them). **scale model**: ``scaling cluster start dask --machines N --link RATE``, the gang at
each p on its machines, every time divided by the dilation D measured at start (the modelled
cluster's time, as the cost model's table shows it). A machine's share is a quota per 10 ms
period: a member that has spent its quota waits for its next period, and at a barrier everyone
waits for that member. Writes ``benchmarks/results/barrier.{md,json}`` (a hand-written
``## Reading`` below the table is kept).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import RESULTS, host_line, kept_reading, scale_model, write_result

from scaling.data import Blobs
from scaling.engines import make_engine
from scaling.present.text import text_table

PRODUCTS = (0, 1, 2, 4, 8, 16)
"""Matrix products per member per iteration: from nothing to ~10 ms of a modelled machine."""

REPEAT = 25
"""Iterations per k, after two."""


def _iterations(ctx, parts, products: tuple[int, ...], repeat: int) -> dict:
    """Per k: each iteration's (wall, compute) on this member's clock."""
    from scaling.collectives.allreduce import Mesh

    a, one = np.ones((256, 256)), np.zeros(1)
    mesh = Mesh(ctx, timeout=120)
    out = {}
    try:
        for k in products:
            times = []
            for _ in range(repeat + 2):
                t0 = time.perf_counter()
                for _ in range(k):
                    a @ a
                t1 = time.perf_counter()
                mesh.allreduce(one)
                times.append((time.perf_counter() - t0, t1 - t0))
            out[k] = times[2:]
    finally:
        mesh.close()
    return out


def measure(workers: int, address: str | None, dilation: float) -> list[dict]:
    """Each k's medians at ``workers`` members (times divided by ``dilation``)."""
    with make_engine("dask", workers, address=address) as eng:
        ds = eng.load(Blobs(rows=256 * workers, features=4, seed=0), partitions=workers)
        members = eng.gang(ds, _iterations, PRODUCTS, REPEAT)
        eng.release(ds)
    rows = []
    for k in PRODUCTS:
        iterations = list(zip(*(m[k] for m in members), strict=True))  # per iteration, members
        walls = [statistics.median(w for w, _ in it) / dilation for it in iterations]
        works = [statistics.median(c for _, c in it) / dilation for it in iterations]
        excess = [w - c for w, c in zip(walls, works, strict=True)]
        q1, median, q3 = statistics.quantiles(excess, n=4)
        rows.append({"workers": workers, "products": k, "compute": statistics.median(works),
                     "excess": median, "q1": q1, "q3": q3})  # fmt: skip
    return rows


def on_scale_model(args: argparse.Namespace) -> tuple[float, list[dict]]:
    """The gang at each count on a scale model of ``--machines``, this script on its head."""
    with (
        scale_model("dask", args.machines, args.link) as model,
        tempfile.NamedTemporaryFile(suffix=".json") as kept,
    ):
        argv = [sys.executable, __file__, "--workers", ",".join(map(str, args.workers)),
                "--address", model.address, "--dilation", str(model.dilation),
                "--keep", kept.name]  # fmt: skip
        if model.on_head(argv) != 0:
            sys.exit("barrier: the run on the scale model failed (see above); no results written")
        return model.dilation, json.loads(Path(kept.name).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=8)
    parser.add_argument("--workers", default="2,4,8", help="gang sizes on the scale model")
    parser.add_argument("--link", default="1gbit")
    parser.add_argument("--out", default=str(RESULTS))
    # what the script runs on the scale model's head: measure there, keep in --keep
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--dilation", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--keep", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workers = [int(p) for p in args.workers.split(",")]
    if args.address:
        rows = [r for p in args.workers for r in measure(p, args.address, args.dilation)]
        Path(args.keep).write_text(json.dumps(rows))
        return
    rows = [{"where": "host", **r} for p in (1, 2) for r in measure(p, None, 1.0)]
    d, emulated = on_scale_model(args)
    rows += [{"where": f"scale model (D = {d:.2f})", **r} for r in emulated]
    table = [("where", "workers", "products", "compute", "excess", "its quartiles")]
    for r in rows:
        ms = [f"{r[k] * 1e3:.2f} ms" for k in ("compute", "excess", "q1", "q3")]
        table.append(
            (r["where"], str(r["workers"]), str(r["products"]), *ms[:2], " - ".join(ms[2:]))
        )
    command = " ".join(["benchmarks/barrier.py", *sys.argv[1:]])
    lines = [
        "# A synchronisation after equal work: what it costs beyond the work",
        "",
        f"Command: `.venv/bin/python {command}`",
        "",
        f"Host: {host_line()}. Per iteration, every member computes `products` products of "
        "256 x 256 matrices, then all-reduces one number; `excess` is the iteration's wall "
        "time less the median member's compute (medians over the members, then over "
        f"{REPEAT} iterations; quartiles over the iterations). On the scale model every time "
        "is divided by its dilation D: the modelled cluster's.",
        "",
        "```",
        text_table(table),
        "```",
        "",
        kept_reading(Path(args.out) / "barrier.md"),
    ]
    write_result(Path(args.out), "barrier", lines, {"command": command, "rows": rows})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
