"""What one iteration costs an engine when it computes nothing: the framework's own floor,
measured natively on the same cluster, beside this project's driver loop and all-reduce.

    .venv/bin/python benchmarks/overhead.py                 # the recorded run (make bench)
    .venv/bin/python benchmarks/overhead.py --engines ray   # one engine

For each engine at ``--workers`` (2) workers, on the cluster this project's engine started:

- **native floor**: the cheapest way to run one empty task per worker and get a value back,
  written against the framework's own API (Ray: an actor call per worker, then ``ray.get``;
  Dask: ``client.submit`` per worker, then ``gather``; Spark: ``rdd.reduce`` over a cached
  RDD of one partition per worker), and the same with one combine step after the tasks, the
  shape of a map-reduce (Ray: a third actor call on the two results; Dask: a third task;
  Spark: ``treeReduce``);
- **driver loop**: this project's empty ``map_reduce`` (what one driver-loop iteration costs
  beyond its compute), and its empty ``map``;
- **all-reduce**: one iteration of an empty loop inside one gang (a map-reduce of one number
  per worker, all-reduced among the workers), as timed by the workers;
- **k-means, tiny**: one Lloyd iteration on 2,000 x 4 rows, k = 4, in both executions.

Every figure is the median of ``--repeat`` calls after warm-up ones. Writes
``benchmarks/results/overhead.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from functools import partial
from pathlib import Path

from common import RESULTS, host_line, write_result

from jobs import kmeans
from scaling.data import Blobs
from scaling.engines import make_engine
from scaling.engines.worker import noop, noop_combine
from scaling.execution import execute
from scaling.run import calibrate

ENGINES = ("ray", "dask", "spark")
median_seconds = partial(calibrate.median_seconds, warm=3)  # as the table says


def one(_=None) -> int:
    return 1


def plus(a: int, b: int) -> int:
    return a + b


def native_floors(engine, repeat: int) -> dict[str, float]:
    """The framework's own empty step, on the engine's own cluster (its processes)."""
    if engine.name == "ray":
        import ray

        @ray.remote(num_cpus=0)
        class Echo:
            def one(self) -> int:
                return 1

            def plus(self, a: int, b: int) -> int:
                return a + b

        actors = [Echo.remote() for _ in range(engine.workers)]
        ray.get([a.one.remote() for a in actors])

        def map_reduce() -> int:
            refs = [a.one.remote() for a in actors]
            while len(refs) > 1:
                refs = [actors[0].plus.remote(refs[0], refs[1]), *refs[2:]]
            return ray.get(refs[0])

        floors = {
            "map": median_seconds(lambda: ray.get([a.one.remote() for a in actors]), repeat),
            "map_reduce": median_seconds(map_reduce, repeat),
        }
        for a in actors:
            ray.kill(a)
        return floors
    if engine.name == "dask":
        client, addrs = engine._client, engine._addrs

        def submit(fn, *args, w=0):
            return client.submit(fn, *args, workers=[addrs[w]], pure=False)

        def dask_map() -> list:
            return client.gather([submit(one, w=w) for w in range(engine.workers)])

        def dask_map_reduce() -> int:
            futures = [submit(one, w=w) for w in range(engine.workers)]
            while len(futures) > 1:
                futures = [submit(plus, futures[0], futures[1]), *futures[2:]]
            return futures[0].result()

        return {
            "map": median_seconds(dask_map, repeat),
            "map_reduce": median_seconds(dask_map_reduce, repeat),
        }
    sc = engine._sc  # spark
    rdd = sc.parallelize(range(engine.workers), engine.workers).cache()
    rdd.count()
    floors = {
        "map": median_seconds(lambda: rdd.map(one).reduce(plus), repeat),
        "map_reduce": median_seconds(lambda: rdd.map(one).treeReduce(plus, depth=2), repeat),
    }
    rdd.unpersist()
    return floors


def ours(engine, repeat: int) -> dict[str, float]:
    ds = engine.load(Blobs(rows=2_000, features=4, centers=4, seed=0))
    out = {
        "map": median_seconds(lambda: engine.map(ds, noop), repeat),
        "map_reduce": median_seconds(lambda: engine.map_reduce(ds, noop, noop_combine), repeat),
    }
    engine.trace.reset()
    execute(engine, ds, "allreduce", calibrate.empty_loop, 10 * repeat, iteration="empty")
    out["allreduce"] = statistics.median(s["wall"] for s in engine.trace.summaries("empty")[3:])
    for execution in ("driver", "allreduce"):
        engine.trace.reset()
        config = kmeans.KMeansConfig(
            k=4, max_iter=repeat, tol=0, init="random", execution=execution
        )
        kmeans.fit(engine, ds, config)
        walls = [s["wall"] for s in engine.trace.summaries(kmeans.ITERATION)[1:]]
        out[f"kmeans_{execution}"] = statistics.median(walls)
    engine.release(ds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = []
    for name in args.engines.split(","):
        with make_engine(name, args.workers) as engine:
            # The engine's calls first, the framework's after: the native actors and RDDs
            # must not be there while the engine's calls are timed.
            row = {"engine": name, "workers": args.workers, "ours": ours(engine, args.repeat)}
            row["native"] = native_floors(engine, args.repeat)
        rows.append(row)
        print(name, json.dumps(row, default=float), file=sys.stderr, flush=True)
    write(args, rows)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def write(args: argparse.Namespace, rows: list[dict]) -> None:
    lines = [
        "# The cost of an empty iteration: the framework's floor, the driver loop, all-reduce",
        "",
        f"Command: `.venv/bin/python benchmarks/overhead.py --engines {args.engines} "
        f"--workers {args.workers} --repeat {args.repeat}`",
        "",
        f"{args.workers} workers, medians of {args.repeat} calls after 3 warm-up ones. "
        f"Host: {host_line()}.",
        "",
        "| engine | native floor: map / map-reduce | driver loop: map / map-reduce "
        "| driver map-reduce / native (target <= 1.15) | all-reduce iteration (target <= 1 ms) "
        "| k-means 2,000 x 4 iteration: driver / all-reduce |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        n, o = r["native"], r["ours"]
        lines.append(
            f"| {r['engine']} | {_ms(n['map'])} / {_ms(n['map_reduce'])} "
            f"| {_ms(o['map'])} / {_ms(o['map_reduce'])} "
            f"| {o['map_reduce'] / n['map_reduce']:.2f} | {_ms(o['allreduce'])} "
            f"| {_ms(o['kmeans_driver'])} / {_ms(o['kmeans_allreduce'])} |"
        )
    lines += [
        "",
        "Native floor: the framework's own API on the same cluster (Ray: actor calls and "
        "`ray.get`; Dask: `client.submit` pinned to each worker and `gather`; Spark: "
        "`rdd.map(...).reduce` / `treeReduce(depth=2)` on a cached RDD). Driver loop: "
        "this project's empty `map` / `map_reduce` calls. All-reduce: one iteration of an "
        "empty loop inside one gang, timed by the workers (a sum of one number).",
    ]
    args_ = {k: str(v) for k, v in vars(args).items()}
    write_result(args.out, "overhead", lines, {"args": args_, "rows": rows})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
