"""The map steps' kernels against scikit-learn's on one core: same data, same centres, same
weights, one BLAS/OpenMP thread each, interleaved.

    .venv/bin/python benchmarks/kernels.py                # the recorded run (make bench)
    .venv/bin/python benchmarks/kernels.py --rows 200000  # smaller

- **k-means** (the map of one Lloyd iteration): this project's ``_partial_sums`` (a GEMM per
  block of rows, then one compiled pass for the argmin, the sums and the counts) against
  scikit-learn's ``lloyd_iter_chunked_dense`` with ``n_threads=1`` (its Cython Lloyd step: a
  GEMM per chunk, the argmin and the sums in one pass over the chunk), float64 and float32.
  Ours leaves out the centres' update (the driver's, k x d); scikit-learn's includes it: it is
  O(k d), nothing beside O(n k d).
- **logistic regression** (the map of one gradient step): this project's ``_loss_grad`` (one
  compiled pass over blocks of rows: a GEMV for z, the loss and the residual, a GEMV for the
  block's gradient while it is in cache) against the two whole-array GEMVs alone (``X @ w``
  and ``X.T @ r``, the floor of any kernel that reads X twice), and scikit-learn's
  ``LinearModelLoss.loss_gradient``.

Each figure is the median of ``--repeat`` timed calls after two warm-up ones, the contenders
taking turns, so that a noisy neighbour slows each alike. Writes
``benchmarks/results/kernels.{md,json}``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from common import RESULTS, host_line, interleaved, write_result
from threadpoolctl import threadpool_info

from jobs.kmeans.kernels import _partial_sums
from jobs.logreg.kernels import _loss_grad
from scaling.data import Blobs, Classification, Part
from scaling.engines.worker import pin_threads


def kmeans_contenders(X: np.ndarray, centers: np.ndarray) -> dict[str, Callable[[], object]]:
    from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense

    part = Part(X=X, y=None, start=0)
    c = centers.astype(X.dtype)
    k, n = len(c), len(X)
    weights, labels = np.ones(n, X.dtype), np.zeros(n, np.int32)
    new, in_cluster, shift = np.empty_like(c), np.zeros(k, X.dtype), np.zeros(k, X.dtype)

    def sklearn() -> None:
        lloyd_iter_chunked_dense(X, weights, c, new, in_cluster, labels, shift, 1, True)

    return {"scaling": lambda: _partial_sums(part, c), "scikit-learn": sklearn}


def logreg_contenders(X: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], object]]:
    from sklearn._loss.loss import HalfBinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    part = Part(X=X, y=y, start=0)
    wb = np.random.default_rng(1).standard_normal(X.shape[1] + 1) * 0.1
    w, r = wb[:-1].astype(X.dtype), np.empty(len(X), X.dtype)
    labels = (y == y.max()).astype(X.dtype)
    loss = LinearModelLoss(base_loss=HalfBinomialLoss(), fit_intercept=True)
    weights = np.ones(len(X), X.dtype)

    def gemv_pair() -> None:
        np.matmul(X, w, out=r)
        X.T @ r

    def sklearn() -> None:
        loss.loss_gradient(wb.astype(X.dtype), X, labels, weights, l2_reg_strength=0.0, n_threads=1)

    return {
        "scaling": lambda: _loss_grad(part, wb, y.max(), 0.0, 0),
        "two GEMVs alone": gemv_pair,
        "scikit-learn": sklearn,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    n, d = args.rows, args.features
    record: dict = {"rows": n, "features": d, "k": args.k, "repeat": args.repeat, "cases": []}
    rows = []
    # one thread in every BLAS library, those loaded later too (scipy's OpenBLAS loads with
    # scikit-learn, after a threadpool_limits(1) would have run: it then took both cores)
    pin_threads()
    X64, _ = Blobs(rows=n, features=d, centers=args.k, seed=0).read(0, n)
    centers = X64[np.random.default_rng(0).choice(n, args.k, replace=False)]
    C64, y = Classification(rows=n, features=d, seed=0).read(0, n)
    cases = [
        (f"k-means map, k = {args.k}", dtype, kmeans_contenders(X64.astype(dtype), centers))
        for dtype in ("float64", "float32")
    ] + [
        ("logistic regression loss + gradient", dtype, logreg_contenders(C64.astype(dtype), y))
        for dtype in ("float64", "float32")
    ]
    for kernel, dtype, contenders in cases:
        medians = interleaved(contenders, args.repeat)
        peer = medians["scikit-learn"]
        for name, seconds in medians.items():
            rows.append(
                f"| {kernel} | {dtype} | {name} | {seconds * 1e3:.1f} | "
                f"{seconds / n * 1e9:.1f} | {seconds / peer:.2f} |"
            )
            record["cases"].append(
                {"kernel": kernel, "dtype": dtype, "contender": name, "seconds": seconds}
            )
        print(rows[-len(medians) :], flush=True)
    threads = {i["filepath"].rsplit("/", 1)[-1]: i["num_threads"] for i in threadpool_info()}
    if set(threads.values()) != {1}:
        raise SystemExit(f"not one thread each: {threads}")
    command = "`.venv/bin/python benchmarks/kernels.py" + (
        f" --rows {n}`" if n != 1_000_000 else "`"
    )
    lines = [
        "# The map steps' kernels against scikit-learn's, one core",
        "",
        f"Command: {command}",
        "",
        f"Data: {n:,} x {d}, the same rows, centres and weights for every contender; one "
        f"BLAS/OpenMP thread (checked after the run: {len(threads)} libraries, one thread each); "
        f"medians of {args.repeat} interleaved calls after two warm-ups. "
        f"Host: {host_line()}.",
        "",
        "| kernel | dtype | contender | ms per call | ns per row | ratio to scikit-learn |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "k-means: scikit-learn's call includes the centres' update (O(k d)); ours leaves it to "
        "the driver. Logistic regression: the two matrix-vector products alone read X twice, "
        "the floor of any kernel that makes them in turn; ours reads each block of rows once "
        "for both.",
    ]
    write_result(args.out, "kernels", lines, record)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
