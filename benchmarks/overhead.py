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
- **deadline + recovery**: the same ``map_reduce`` with the step deadline and the lost-worker
  recovery taken out (the framework's plain wait): what that protection costs a step;
- **all-reduce**: one iteration of an empty loop inside one gang (a map-reduce of one number
  per worker, all-reduced among the workers), as timed by the workers;
- **k-means, tiny**: one Lloyd iteration on 2,000 x 4 rows, k = 4, in both executions.

Every figure is the median of ``--repeat`` calls after warm-up ones; the native calls and ours
take turns. Writes
``benchmarks/results/overhead.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from common import RESULTS, host_line, interleaved, write_result

from jobs import kmeans
from scaling.data import Blobs
from scaling.engines import make_engine
from scaling.engines.worker import noop, noop_combine
from scaling.execution import execute
from scaling.run import calibrate

ENGINES = ("ray", "dask", "spark")


def one(_=None) -> int:
    return 1


def plus(a: int, b: int) -> int:
    return a + b


def native_calls(engine) -> tuple[dict[str, Callable[[], object]], Callable[[], None]]:
    """The framework's own empty map and map-reduce on the engine's own cluster (its
    processes), and what removes what they made."""
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

        calls = {"map": lambda: ray.get([a.one.remote() for a in actors]), "map_reduce": map_reduce}
        return calls, lambda: [ray.kill(a) for a in actors]
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

        return {"map": dask_map, "map_reduce": dask_map_reduce}, lambda: None
    sc = engine._sc  # spark
    rdd = sc.parallelize(range(engine.workers), engine.workers).cache()
    rdd.count()
    calls = {
        "map": lambda: rdd.map(one).reduce(plus),
        "map_reduce": lambda: rdd.map(one).treeReduce(plus, depth=2),
    }
    return calls, rdd.unpersist


def unprotected(engine, call: Callable[[], object]) -> Callable[[], object]:
    """``call`` with the step deadline and the recovery taken out of the engine: its hooks
    wait the framework's plain way (``ray.get``, ``client.gather``, the Spark action itself)
    and a lost worker is not recovered. What the protection costs is the difference."""
    plain: dict[str, Callable] = {"recovering": lambda op, attempt: attempt()}
    if engine.name == "ray":
        import ray

        plain["_get"] = lambda refs, op: ray.get(refs)
    elif engine.name == "dask":
        plain["_step"] = lambda futures, op: engine._client.gather(futures)
    else:
        plain["_step"] = lambda action, op: action()

    def bare() -> object:
        vars(engine).update(plain)
        try:
            return call()
        finally:
            for name in plain:
                delattr(engine, name)

    return bare


def empty_steps(engine, repeat: int) -> dict[str, float]:
    """The framework's empty map and map-reduce, this project's, and this project's without
    the deadline and recovery: medians of ``repeat`` calls taking turns."""
    ds = engine.load(Blobs(rows=2_000, features=4, centers=4, seed=0))
    native, remove = native_calls(engine)
    ours = {
        "map": lambda: engine.map(ds, noop),
        "map_reduce": lambda: engine.map_reduce(ds, noop, noop_combine),
    }
    contenders = {
        **{f"native {k}": f for k, f in native.items()},
        **{f"ours {k}": f for k, f in ours.items()},
        "unprotected map_reduce": unprotected(engine, ours["map_reduce"]),
    }
    try:
        return interleaved(contenders, repeat)
    finally:
        remove()
        engine.release(ds)


def loops(engine, repeat: int) -> dict[str, float]:
    """An empty all-reduce loop's iteration, and a tiny k-means iteration in each execution."""
    ds = engine.load(Blobs(rows=2_000, features=4, centers=4, seed=0))
    engine.trace.reset()
    execute(engine, ds, "allreduce", calibrate.empty_loop, 10 * repeat, iteration="empty")
    out = {"allreduce": statistics.median(s["wall"] for s in engine.trace.summaries("empty")[3:])}
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
            steps = empty_steps(engine, args.repeat)
            row = {"engine": name, "workers": args.workers, **steps}
            row.update(loops(engine, args.repeat))
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
        f"{args.workers} workers, medians of {args.repeat} calls after 2 warm-up ones. "
        f"Host: {host_line()}.",
        "",
        "| engine | native floor: map / map-reduce | driver loop: map / map-reduce "
        "| driver map-reduce / native (target <= 1.15) "
        "| deadline + recovery per step, of the floor (target < 5%) "
        "| all-reduce iteration (target <= 1 ms) "
        "| k-means 2,000 x 4 iteration: driver / all-reduce |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        floor, ours = r["native map_reduce"], r["ours map_reduce"]
        protection = (ours - r["unprotected map_reduce"]) / floor
        lines.append(
            f"| {r['engine']} | {_ms(r['native map'])} / {_ms(floor)} "
            f"| {_ms(r['ours map'])} / {_ms(ours)} | {ours / floor:.2f} | {protection:+.1%} "
            f"| {_ms(r['allreduce'])} "
            f"| {_ms(r['kmeans_driver'])} / {_ms(r['kmeans_allreduce'])} |"
        )
    lines += [
        "",
        "Native floor: the framework's own API on the same cluster (Ray: actor calls and "
        "`ray.get`; Dask: `client.submit` pinned to each worker and `gather`; Spark: "
        "`rdd.map(...).reduce` / `treeReduce(depth=2)` on a cached RDD). Driver loop: "
        "this project's empty `map` / `map_reduce` calls. The native and our calls take turns "
        "(this host's speed swings from minute to minute). Deadline + recovery: our "
        "map-reduce less the same call with the step deadline and recovery taken out (the "
        "framework's plain wait), as a share of the floor; within the noise it can come out "
        "negative. All-reduce: one iteration of an empty loop inside one gang, timed by the "
        "workers (a sum of one number).",
    ]
    args_ = {k: str(v) for k, v in vars(args).items()}
    write_result(args.out, "overhead", lines, {"args": args_, "rows": rows})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
