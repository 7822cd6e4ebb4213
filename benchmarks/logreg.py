"""Logistic regression: time to the same objective, side by side, this project vs its peers.

    .venv/bin/python benchmarks/logreg.py                  # the recorded run
    .venv/bin/python benchmarks/logreg.py --rows 100000    # a quick look

Identical data for everyone: the seeded classification generator (1,000,000 x 32 float64),
C = 1, intercept unpenalised (dask-ml penalises its intercept too; at this n that moves the
objective by < 1e-7). The optimum F* is scikit-learn's lbfgs with tol=1e-12. Every contender is
fitted with a tightening ladder of tolerances and timed at the first fit whose objective,
evaluated here by one function, is within 1e-6 of F* (relative): the time to that objective.
Contenders, at 1 and 2 single-thread workers: this project's L-BFGS on every engine in both
executions (``driver``: one engine call per evaluation; ``allreduce``: the solver on every
worker in one gang, its sums all-reduced among them) and its ADMM on Dask; scikit-learn lbfgs
with one thread; dask-ml LogisticRegression (lbfgs and admm)
on a Dask LocalCluster; Spark MLlib LogisticRegression on local[p]. Our time excludes cluster
start-up and data loading, as the peers' does. Writes ``benchmarks/results/logreg.{md,json}``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import RESULTS, dask_cluster, host_line, scatter_rows, spark_local, write_result

from jobs import logreg
from scaling.data import Classification, partition_bounds
from scaling.engines import make_engine

ENGINES = ("local", "ray", "dask", "spark")
TOLERANCES = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10)
TARGET_GAP = 1e-6


def objective(coef: np.ndarray, intercept: float, X: np.ndarray, y: np.ndarray, C: float):
    z = X @ coef + intercept
    return float(np.sum(np.logaddexp(0, z) - y * z) + coef @ coef / (2 * C))


def time_to_target(
    fit: Callable[[float], tuple[np.ndarray, float]],
    f_star: float,
    evaluate: Callable[[np.ndarray, float], float],
) -> dict:
    """Seconds of the first fit down the tolerance ladder that gets within TARGET_GAP of F*."""
    for tol in TOLERANCES:
        t0 = time.perf_counter()
        coef, intercept = fit(tol)
        seconds = time.perf_counter() - t0
        gap = evaluate(coef, intercept) / f_star - 1
        if gap <= TARGET_GAP:
            return {"seconds": seconds, "tol": tol, "gap": gap, "reached": True}
    return {"seconds": seconds, "tol": tol, "gap": gap, "reached": False}


def ours(
    engine: str,
    workers: int,
    source: Classification,
    C: float,
    solver: str,
    execution: str,
    f_star,
    evaluate,
) -> dict:
    with make_engine(engine, workers) as eng:
        ds = eng.load(source)

        def fit(tol: float):
            config = logreg.LogRegConfig(
                solver=solver, C=C, tol=tol, max_iter=2000, execution=execution
            )
            r = logreg.fit(eng, ds, config)
            return r.coef, r.intercept

        fit(1e-2)  # warm-up: imports and JIT in the workers
        return time_to_target(fit, f_star, evaluate)


def sklearn_1thread(X, y, C, f_star, evaluate) -> dict:
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    def fit(tol: float):
        m = LogisticRegression(C=C, tol=tol, max_iter=10_000).fit(X, y)
        return m.coef_[0], m.intercept_[0]

    with threadpool_limits(1):
        return time_to_target(fit, f_star, evaluate)


def dask_ml(X, y, C, workers: int, solver: str, f_star, evaluate) -> dict:
    from dask_ml.linear_model import LogisticRegression

    with dask_cluster(workers) as client:
        Xd, yd = scatter_rows(client, X, workers), scatter_rows(client, y, workers)

        def fit(tol: float):
            options = (
                {"solver_kwargs": {"abstol": tol, "reltol": tol}}
                if solver == "admm"
                else {"tol": tol}
            )
            max_iter = 250 if solver == "admm" else 2000  # 250: dask-glm's own ADMM default
            m = LogisticRegression(C=C, solver=solver, max_iter=max_iter, **options).fit(Xd, yd)
            return np.asarray(m.coef_), float(m.intercept_)

        return time_to_target(fit, f_star, evaluate)


def _labelled_rows(source: Classification, bounds: tuple[int, int]):
    from pyspark.ml.linalg import DenseVector

    X, y = source.read(*bounds)
    return [(float(label), DenseVector(row)) for row, label in zip(X, y, strict=True)]


def mllib(source: Classification, C: float, workers: int, f_star, evaluate) -> dict:
    from pyspark.ml.classification import LogisticRegression

    with spark_local(workers) as session:
        bounds = partition_bounds(source.rows, workers)
        rdd = session.sparkContext.parallelize(bounds, workers)
        frame = rdd.flatMap(lambda b: _labelled_rows(source, b)).toDF(["label", "features"])
        frame = frame.cache()
        frame.count()

        def fit(tol: float):
            # MLlib minimises mean loss + regParam/2 ||w||^2: regParam = 1 / (C n) is F / n.
            m = LogisticRegression(
                regParam=1 / (C * source.rows),
                elasticNetParam=0.0,
                standardization=False,
                tol=tol,
                maxIter=2000,
            ).fit(frame)
            return m.coefficients.toArray(), m.intercept

        return time_to_target(fit, f_star, evaluate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--executions", default="driver,allreduce")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    source = Classification(rows=args.rows, features=args.features, seed=0)
    X, y = source.read(0, source.rows)
    from sklearn.linear_model import LogisticRegression

    best = LogisticRegression(C=args.C, tol=1e-12, max_iter=100_000).fit(X, y)
    f_star = objective(best.coef_[0], best.intercept_[0], X, y, args.C)

    def evaluate(coef, intercept):
        return objective(np.asarray(coef).ravel(), float(intercept), X, y, args.C)

    rows: list[dict] = []

    def add(contender: str, workers: int, result: dict) -> None:
        rows.append({"contender": contender, "workers": workers, **result})
        print(
            f"{contender:>22} x{workers}: {result['seconds']:.3f} s (tol {result['tol']:g}, "
            f"gap {result['gap']:.1e})",
            file=sys.stderr,
            flush=True,
        )
        write(args, rows, f_star)  # after each contender: a long run keeps what it measured

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarnings of the looser ladder steps
        add("scikit-learn lbfgs", 1, sklearn_1thread(X, y, args.C, f_star, evaluate))
        for engine in args.engines.split(","):
            runs = [("lbfgs", e) for e in args.executions.split(",")]
            runs += [("admm", "driver")] if engine == "dask" else []
            for solver, execution in runs:
                for p in (1, 2):
                    add(
                        f"scaling/{engine} {solver} {execution}",
                        p,
                        ours(engine, p, source, args.C, solver, execution, f_star, evaluate),
                    )
        for solver in ("lbfgs", "admm"):
            for p in (1, 2):
                add(f"dask-ml {solver}", p, dask_ml(X, y, args.C, p, solver, f_star, evaluate))
        for p in (1, 2):
            add("spark-mllib", p, mllib(source, args.C, p, f_star, evaluate))
    print((Path(args.out) / "logreg.md").read_text())


def write(args: argparse.Namespace, rows: list[dict], f_star: float) -> None:
    t = {(r["contender"], r["workers"]): r for r in rows}
    sk = t[("scikit-learn lbfgs", 1)]["seconds"]  # measured first
    peers = {
        "scaling/dask": ("dask-ml lbfgs", "dask-ml admm"),
        "scaling/spark": ("spark-mllib",),
    }
    lines = [
        "# Logistic regression: time to the same objective, side by side",
        "",
        f"Command: `.venv/bin/python benchmarks/logreg.py --rows {args.rows} --features "
        f"{args.features} --C {args.C} --engines {args.engines} --executions "
        f"{args.executions}`",
        "",
        f"Data: {args.rows:,} x {args.features} float64, C={args.C}; F* = {f_star:.6f} "
        f"(scikit-learn, tol 1e-12). Target: objective within {TARGET_GAP:g} of F* (relative). "
        f"Host: {host_line()}.",
        "",
        "| contender | workers | seconds to target | tol used | reached | ratio to sklearn-1-thread"
        " (target at 2 workers <= 0.6) | ratio to the best peer on the same engine (target <= 0.5)"
        " |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name, p, s = r["contender"], r["workers"], r["seconds"]
        vs_sk = f"{s / sk:.2f}" if name.startswith("scaling/") else ""
        engine = name.split(" ")[0]
        peer_times = [(t[(q, p)]["seconds"], q) for q in peers.get(engine, ()) if (q, p) in t]
        vs_peer = ""
        if peer_times:
            best_s, best_q = min(peer_times)
            vs_peer = f"{s / best_s:.2f} (vs {best_q})"
        lines.append(
            f"| {name} | {p} | {s:.3f} | {r['tol']:g} | {'yes' if r['reached'] else 'NO'}"
            f" | {vs_sk} | {vs_peer} |"
        )
    lines += [
        "",
        "Each time is one fit (the first on the tolerance ladder that reaches the "
        "target), after a warm-up fit for this project's engines.",
    ]
    write_result(args.out, "logreg", lines, {"args": vars(args), "f_star": f_star, "rows": rows})


if __name__ == "__main__":
    main()
