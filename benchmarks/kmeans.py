"""k-means per-iteration time, side by side: this project on every engine vs its peers.

    .venv/bin/python benchmarks/kmeans.py                  # the recorded run (make bench)
    .venv/bin/python benchmarks/kmeans.py --rows 100000    # a quick look

Identical data for everyone: the seeded blobs generator (1,000,000 x 32 float64, 16 overlapping
clusters), the same 16 initial centres, Lloyd with tol=0. Contenders, each at 1 and 2 workers:
this project on local/ray/dask/spark in both executions (``driver``: one engine call per
iteration; ``allreduce``: the fit inside one gang, partial sums all-reduced among the workers);
scikit-learn ``KMeans(algorithm="lloyd")`` with one
thread; dask-ml ``KMeans`` on a Dask LocalCluster of single-thread workers; Spark MLlib
``KMeans`` on ``local[p]``. Every worker is pinned to one BLAS thread.

Our time per iteration is the median of the traced Lloyd iterations after the first
(warm-up). The peers report no per-iteration times, so theirs is
(T(11 iterations) - T(1 iteration)) / 10, each T the median of ``--repeat`` fits: the
difference removes set-up, data conversion and final passes, so that only Lloyd iterations are
compared.

This host's speed swings by a third from minute to minute (a shared machine), so each of our
runs is paired with a scikit-learn measurement taken just before it, and a row's ratio is the
median of ``--repeat`` such pairs' ratios, the runs of one worker count on one cluster, the
executions taking turns. Writes ``benchmarks/results/kmeans.{md,json}``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
from common import RESULTS, dask_cluster, host_line, scatter_rows, spark_local, write_result

from jobs import kmeans
from scaling.data import Blobs, partition_bounds
from scaling.run.pool import Clusters
from scaling.run.runner import run_job
from scaling.run.spec import RunSpec
from scaling.run.sweep import per_iteration_by_difference

ENGINES = ("local", "ray", "dask", "spark")


def sklearn_1thread(X: np.ndarray, start: np.ndarray, iters: int, repeat: int) -> float:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    def fit(n: int) -> KMeans:
        return KMeans(len(start), init=start, n_init=1, max_iter=n, tol=0, algorithm="lloyd").fit(X)

    with threadpool_limits(1):
        return per_iteration_by_difference(fit, iters, repeat)


def dask_ml(X: np.ndarray, start: np.ndarray, workers: int, iters: int, repeat: int) -> float:
    from dask_ml.cluster import KMeans

    with dask_cluster(workers) as client:
        data = scatter_rows(client, X, workers)

        def fit(n: int) -> KMeans:
            return KMeans(len(start), init=start, max_iter=n, tol=0).fit(data)

        return per_iteration_by_difference(fit, iters, repeat)


def _blob_rows(source: Blobs, bounds: tuple[int, int]):
    return list(source.read(*bounds)[0])


def mllib(source: Blobs, start: np.ndarray, workers: int, iters: int, repeat: int) -> float:
    from pyspark.mllib.clustering import KMeans, KMeansModel

    with spark_local(workers) as session:
        bounds = partition_bounds(source.rows, workers)
        rdd = session.sparkContext.parallelize(bounds, workers)
        rdd = rdd.flatMap(lambda b: _blob_rows(source, b)).cache()
        rdd.count()

        def fit(n: int) -> None:
            KMeans.train(
                rdd, len(start), maxIterations=n, initialModel=KMeansModel(list(start)), epsilon=0.0
            )

        return per_iteration_by_difference(fit, iters, repeat)


def ours(
    engine: str,
    workers: int,
    execution: str,
    source: Blobs,
    start: np.ndarray,
    iters: int,
    clusters: Clusters,
) -> dict:
    config = kmeans.KMeansConfig(
        k=len(start), init=start, max_iter=iters, tol=0, execution=execution
    )
    spec = RunSpec(job=kmeans.JOB, engine=engine, workers=workers, source=source, config=config)
    run = run_job(spec, clusters=clusters)
    r = run.record
    return {
        "per_iteration": r["timings"]["per_iteration"],
        "split": r["split"],
        "latency": r["timings"]["latency"]["map_reduce"],
        "centers": run.result.centers,
        "n_iter": r["quality"]["n_iter"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--executions", default="driver,allreduce")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    source = Blobs(rows=args.rows, features=args.features, centers=args.k, cluster_std=8.0, seed=0)
    X, _ = source.read(0, source.rows)
    start = X[np.random.default_rng(0).choice(len(X), args.k, replace=False)].copy()
    rows: list[dict] = []

    def add(contender: str, workers: int, seconds: float, **extra) -> None:
        rows.append({"contender": contender, "workers": workers, "per_iteration": seconds, **extra})
        print(f"{contender:>16} x{workers}: {seconds:.4f} s/iter", file=sys.stderr, flush=True)

    reference = _sklearn_centers(X, start, args.iters)
    beside: list[float] = []  # every scikit-learn measurement, each just before one of ours
    for engine in args.engines.split(","):
        for p in (1, 2):
            runs: dict[str, list[tuple[float, float, dict]]] = {}
            with Clusters() as clusters:  # one cluster for the repeats and both executions
                for _ in range(args.repeat):
                    for execution in args.executions.split(","):
                        sk = sklearn_1thread(X, start, args.iters, 1)
                        r = ours(engine, p, execution, source, start, args.iters, clusters)
                        assert r["n_iter"] == args.iters
                        np.testing.assert_allclose(r["centers"], reference, rtol=1e-6)  # same work
                        runs.setdefault(execution, []).append((r["per_iteration"], sk, r))
                        beside.append(sk)
            for execution, pairs in runs.items():
                r = pairs[-1][2]
                add(
                    f"scaling/{engine} {execution}",
                    p,
                    statistics.median(s for s, _, _ in pairs),
                    vs_sklearn=statistics.median(s / sk for s, sk, _ in pairs),
                    split=r["split"],
                    latency=r["latency"],
                )
    rows.insert(
        0, {"contender": "scikit-learn", "workers": 1, "per_iteration": statistics.median(beside)}
    )
    for p in (1, 2):
        add("dask-ml", p, dask_ml(X, start, p, args.iters, args.repeat))
    del X
    for p in (1, 2):
        add("spark-mllib", p, mllib(source, start, p, args.iters, args.repeat))
    write(args, rows)


def _sklearn_centers(X: np.ndarray, start: np.ndarray, iters: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(len(start), init=start, n_init=1, max_iter=iters, tol=0, algorithm="lloyd")
    return km.fit(X).cluster_centers_


def write(args: argparse.Namespace, rows: list[dict]) -> None:
    """The table with its targets as ratios, in Markdown, and the raw rows as JSON."""
    t = {(r["contender"], r["workers"]): r["per_iteration"] for r in rows}
    lines = [
        "# k-means: time per Lloyd iteration, side by side",
        "",
        f"Command: `.venv/bin/python benchmarks/kmeans.py --rows {args.rows} --features "
        f"{args.features} --k {args.k} --iters {args.iters} --repeat {args.repeat} "
        f"--engines {args.engines} --executions {args.executions}`",
        "",
        f"Data: {args.rows:,} x {args.features} float64 blobs, k={args.k}, the same given "
        f"centres, {args.iters} Lloyd iterations (tol=0). Host: {host_line()}.",
        "",
        "| contender | workers | s/iter | ratio to sklearn-1-thread (target at 2 workers "
        "<= 0.55) | ratio to peer on same engine, same workers (target <= 0.25) "
        "| overhead per iteration |",
        "|---|---|---|---|---|---|",
    ]
    peers = {"scaling/dask": "dask-ml", "scaling/spark": "spark-mllib"}
    for r in rows:
        name, p, s = r["contender"], r["workers"], r["per_iteration"]
        vs_sk = f"{r['vs_sklearn']:.2f}" if "vs_sklearn" in r else ""
        if name == "scaling/local driver" and p > 1:
            vs_sk = "(serial engine: no target)"
        peer = peers.get(name.split(" ")[0])
        vs_peer = f"{s / t[(peer, p)]:.2f} (vs {peer})" if peer and (peer, p) in t else ""
        over = f"{r['split']['overhead'] * 1e3:.1f} ms" if "split" in r else ""
        lines.append(f"| {name} | {p} | {s:.4f} | {vs_sk} | {vs_peer} | {over} |")
    lines += [
        "",
        "Ours: median of the traced iterations, the median of the repeats; its ratio to "
        "scikit-learn, the median of each run's ratio to a scikit-learn measurement taken just "
        "before it (scikit-learn's row: the median of those). Peers: (T(iters+1) - T(1)) / "
        "iters, medians of the repeats. Overhead: driver loop, the engine's calibrated "
        "per-call cost attributed to an iteration; all-reduce, what the workers measured "
        "beyond their map, update and all-reduce (medians). The local engine's all-reduce "
        "runs its workers as threads of one process.",
    ]
    args_ = {k: str(v) for k, v in vars(args).items()}
    write_result(args.out, "kmeans", lines, {"args": args_, "rows": rows})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
