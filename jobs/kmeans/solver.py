"""The fit, written once for both executions (:mod:`scaling.execution`): k-means||
initialisation (algorithm 2 of Bahmani et al., VLDB 2012, its steps numbered as in the paper),
Lloyd's iterations, and the single-thread baseline."""

from __future__ import annotations

import numpy as np

from jobs.kmeans.config import ITERATION, KMeansConfig, KMeansResult
from jobs.kmeans.kernels import (
    _inertia,
    _labels,
    _moments,
    _nearest_counts,
    _partial_sums,
    _sample,
    _take_rows,
    _update,
)
from scaling.data import Blobs, Source
from scaling.engines import Dataset, Engine
from scaling.errors import UsageError
from scaling.execution import Loop, add, add_each, execute
from scaling.job import Baseline, OnIteration


def take_rows(steps: Loop, rows: np.ndarray) -> np.ndarray:
    """Fetch the rows with these global indices (in that order) from the workers."""
    pieces = steps.map(_take_rows, np.asarray(rows))
    index = np.concatenate([p[0] for p in pieces])
    values = np.concatenate([p[1] for p in pieces])
    order = np.argsort(index)
    return values[order][np.searchsorted(index[order], rows)]


def kmeans_parallel_init(steps: Loop, config: KMeansConfig) -> np.ndarray:
    """k-means|| (Bahmani et al. 2012, algorithm 2): k initial centres in few passes.

    Notes
    -----
    ``init_rounds`` (r) rounds, each one map-reduce for the cost and one map for the sample:
    2r + 2 passes over the data, O(n d (1 + r l)) work for l = oversampling * k expected
    candidates a round; each round returns about l rows of d numbers to the driver.
    """
    k, ell = config.k, config.oversampling * config.k
    rng = np.random.default_rng(config.seed)
    # 1: C <- one point sampled uniformly at random from X
    candidates = take_rows(steps, rng.integers(steps.rows, size=1))
    # 2-4: for r rounds, sample each x with probability ell d^2(x, C) / phi_X(C); C <- C u C'
    rounds = 0
    while rounds < config.init_rounds or (len(candidates) < k and rounds < config.init_rounds + 8):
        phi = steps.map_reduce(_inertia, add, candidates)
        if phi <= 0:  # every row already is a candidate
            break
        sampled = steps.map(_sample, candidates, ell, phi, config.seed + 1 + rounds)
        candidates = np.unique(np.vstack([candidates, *sampled]), axis=0)
        rounds += 1
    if len(candidates) < k:
        raise UsageError(f"the data has fewer than k={k} distinct rows; lower --k")
    # 7: weight each candidate by the number of rows closest to it
    weights = steps.map_reduce(_nearest_counts, add, candidates)
    # 8: recluster the weighted candidates into k centres (weighted k-means++ then Lloyd)
    return _recluster(candidates, weights, k, config.seed)


def _recluster(candidates: np.ndarray, weights: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans, kmeans_plusplus

    start, _ = kmeans_plusplus(candidates, k, sample_weight=weights, random_state=seed)
    km = KMeans(k, init=start, n_init=1, random_state=seed)
    return km.fit(candidates, sample_weight=weights).cluster_centers_


def initial_centers(steps: Loop, config: KMeansConfig) -> np.ndarray:
    """The starting centres for ``config.init``."""
    given = config.given_centers(steps.features)
    if given is not None:
        return given
    if config.init == "random":
        rows = np.random.default_rng(config.seed).choice(steps.rows, size=config.k, replace=False)
        return take_rows(steps, rows)
    return kmeans_parallel_init(steps, config)


def absolute_tol(steps: Loop, tol: float) -> float:
    """scikit-learn's tolerance: ``tol`` times the mean variance of the features."""
    if tol == 0:
        return 0.0
    s, ss, n = steps.map_reduce(_moments, add_each)
    return float(np.mean(ss / n - (s / n) ** 2) * tol)


def fit(
    engine: Engine,
    ds: Dataset,
    config: KMeansConfig,
    on_iteration: OnIteration | None = None,
) -> KMeansResult:
    """Fit k-means on a dataset cached on ``engine``.

    Parameters
    ----------
    engine, ds : Engine, Dataset
        Where the rows are and what they are (``engine.load(...)``).
    config : KMeansConfig
        k, initialisation and stopping rule.
    on_iteration : callable, optional
        Called as ``on_iteration(iteration, shift)`` after each Lloyd iteration.

    Returns
    -------
    KMeansResult
        Centres, inertia at the final centres (like scikit-learn's ``inertia_``), iterations.

    Notes
    -----
    Per iteration: O(n k d / p) flops on each of p workers, and k (d + 1) numbers per worker
    to sum: driver loop, a combine tree, ~log2(p) (alpha + 8 k (d + 1) beta) seconds plus the
    engine's call, and the driver ships the k x d centres back to each worker; all-reduce,
    recursive doubling among the workers, the same log2(p) rounds without the driver or the
    engine. Spans ``init`` and ``lloyd`` (one per iteration) are recorded in ``engine.trace``.
    """
    if config.k > ds.rows:
        raise UsageError(
            f"k={config.k} is larger than the number of rows ({ds.rows}); use k <= rows"
        )
    return execute(
        engine, ds, config.execution, _fit, config, iteration=ITERATION, on_iteration=on_iteration
    )


def _fit(steps: Loop, config: KMeansConfig) -> KMeansResult:
    """The whole fit, written once for both executions (:mod:`scaling.execution`)."""
    with steps.span("init"):
        centers = initial_centers(steps, config)
        tol = absolute_tol(steps, config.tol)
    shifts, converged = [], False
    for it in range(config.max_iter):
        with steps.iteration():
            sums, counts = steps.map_reduce(_partial_sums, add_each, centers)
            centers, shift = _update(centers, sums, counts)
        shifts.append(shift)
        steps.progress(it, shift)
        if shift <= tol:
            converged = True
            break
    with steps.span("final"):
        inertia = steps.map_reduce(_inertia, add, centers)
    return KMeansResult(
        centers=centers, inertia=inertia, n_iter=len(shifts), converged=converged, shifts=shifts
    )


def predict(engine: Engine, ds: Dataset, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for every row, in row order."""
    return np.concatenate(engine.map(ds, _labels, np.asarray(centers, dtype=np.float64)))


def synthetic(rows: int, features: int, seed: int, config: KMeansConfig) -> Blobs:
    """The data ``scaling run/sweep kmeans`` use without ``--data``: k overlapping blobs.

    Overlapping (``cluster_std=8`` in a box of +-10), so that Lloyd keeps moving and every run
    of a sweep does the same number of iterations of real work.
    """
    return Blobs(rows=rows, features=features, centers=config.k, cluster_std=8.0, seed=seed)


def baseline(source: Source, config: KMeansConfig, dtype: str = "float64") -> Baseline:
    """scikit-learn's Lloyd on the same rows, ``fit(n)`` running n iterations: the COST
    reference (the runner times it on one thread)."""
    from sklearn.cluster import KMeans

    X = source.read(0, source.rows)[0].astype(dtype, copy=False)
    start = config.given_centers(source.features)
    if start is None:
        start = X[np.random.default_rng(config.seed).choice(len(X), config.k, replace=False)]

    def fit(n: int) -> KMeans:
        return KMeans(config.k, init=start, n_init=1, max_iter=n, tol=0, algorithm="lloyd").fit(X)

    return Baseline("scikit-learn KMeans, 1 thread", fit)
