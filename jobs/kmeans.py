"""Parallel k-means: Lloyd's algorithm as map -> combine -> update, k-means|| initialisation.

Run it (one line each; ``--workers 1,2`` runs once per count)::

    scaling run kmeans --engine local --rows 100000 --features 16 --k 8
    scaling run kmeans --engine ray   --workers 1,2 --rows 1000000 --features 32 --k 16
    scaling run kmeans --engine dask  --workers 2 --address tcp://127.0.0.1:8786 --data x.parquet
    scaling run kmeans --engine spark --workers 2 --init centres.npy --max-iter 10 --tol 0

One Lloyd iteration is one map-reduce (Chu et al., "Map-Reduce for Machine Learning on
Multicore", NIPS 2006, the "summation form"):

1. map (:func:`_partial_sums`): on each partition, assign every row to its nearest centre (a
   BLAS product per row block) and sum the rows and count them, per centre;
2. combine (:func:`~scaling.execution.add_each`): add the partial results up;
3. update (:func:`_update`): centre = sum / count; an empty cluster keeps its previous centre.

The fit (:func:`_fit`) is written once and runs in either execution (``--execution``,
:mod:`scaling.execution`): ``driver``, one engine call per iteration, the partial results added
in a tree on the workers and the update on the driver (what Spark MLlib and dask-ml do); or
``allreduce``, the whole fit inside one gang, the partial results all-reduced among the workers
and the update applied by each of them.

Initialisation by k-means|| follows algorithm 2 of Bahmani et al., "Scalable K-Means++",
VLDB 2012; its steps are numbered as in the paper in :func:`kmeans_parallel_init`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jobs.common import compiled
from scaling.data import Blobs, Part, Source, row_uniforms
from scaling.engines import Dataset, Engine
from scaling.errors import UsageError, check_choice, check_count
from scaling.execution import EXECUTIONS, Steps, add, add_each, execute
from scaling.job import Baseline, Job, OnIteration
from scaling.model.explain import Step, for_execution, tree_depth

ITERATION = "lloyd"
"""Name of the trace span of one iteration (what run records time)."""
INITS = ("k-means||", "random")
ROW_BLOCK = 1_024
"""Rows per distance block: the (block x k) distances stay in cache for the pass over them
(1,024 rows: 0.042 s per 500,000 x 32 rows, k = 16; 256: 0.045; 4,096: 0.049)."""


@dataclass(frozen=True, eq=False)  # eq=False: init may be an array
class KMeansConfig:
    """Validated k-means settings.

    ``init`` is ``"k-means||"``, ``"random"`` (k distinct random rows), a path to a ``.npy``
    file of shape (k, features), or an array of that shape. ``tol`` is relative, as in
    scikit-learn: iterations stop when the summed squared centre shift is at most
    ``tol * mean(feature variances)``; ``tol=0`` runs until the centres stop moving.
    ``execution``: ``driver`` (one engine call per step) or ``allreduce`` (the whole fit
    inside one gang, partial sums all-reduced among the workers; :mod:`scaling.execution`).
    """

    k: int = 8
    max_iter: int = 100
    tol: float = 1e-4
    init: str | np.ndarray = "k-means||"
    init_rounds: int = 2
    oversampling: float = 2.0
    seed: int = 0
    execution: str = "driver"

    def __post_init__(self) -> None:
        check_count("k", self.k)
        check_choice("execution", self.execution, EXECUTIONS)
        check_count("max_iter", self.max_iter)
        if not self.tol >= 0:
            raise UsageError(f"tol must be >= 0, got {self.tol!r}")
        if self.init_rounds < 1 or self.oversampling <= 0:
            raise UsageError(
                "k-means|| needs init_rounds >= 1 and oversampling > 0, got "
                f"{self.init_rounds} and {self.oversampling}"
            )
        if isinstance(self.init, str) and self.init not in INITS:
            if not self.init.endswith(".npy"):
                raise UsageError(
                    f"init must be one of {', '.join(INITS)} or a .npy file of "
                    f"centres, got {self.init!r}"
                )
            if not Path(self.init).is_file():
                raise UsageError(
                    f"init file not found: {self.init}; save the initial centres "
                    "with numpy.save as a (k, features) array"
                )

    def given_centers(self, features: int) -> np.ndarray | None:
        """The initial centres given as an array or file, checked against k and features."""
        if isinstance(self.init, str) and self.init in INITS:
            return None
        centers = np.load(self.init) if isinstance(self.init, str) else np.asarray(self.init)
        if centers.shape != (self.k, features) or not np.isfinite(centers).all():
            raise UsageError(
                f"initial centres have shape {centers.shape}, expected finite "
                f"({self.k}, {features}) for k={self.k} on {features} features"
            )
        return centers.astype(np.float64)


@dataclass
class KMeansResult:
    """Fitted centres (float64), the inertia at those centres, and what the fit did."""

    centers: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    shifts: list[float]


# ---------------------------------------------------------------- per-partition kernels


def _distances(
    X: np.ndarray, centers: np.ndarray, norms: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """``||c||^2 - 2 x.c`` for each row of one block and each centre, a (rows x k) array.

    That is ``||x - c||^2`` less ``||x||^2``, which does not change the nearest centre: one
    (rows x d) by (d x k) matrix product, the O(n k d) part, done by BLAS's gemm. Called on
    the transposes, ``(k x d) (d x rows)`` in column-major order, which is the (rows x k)
    row-major result without a copy of X: 1.3x faster than ``X @ C.T`` for k = 16, d = 32
    (0.042 against 0.055 s per 500,000 rows, one thread). ``out``: a (k x rows)
    Fortran-ordered buffer to write into.
    """
    from scipy.linalg.blas import get_blas_funcs

    gemm = get_blas_funcs("gemm", (X,))
    if out is None:
        out = np.empty((len(centers), len(X)), X.dtype, order="F")
    out[:] = norms[:, None]
    return gemm(-2.0, centers, X.T, beta=1.0, c=out, overwrite_c=True).T


def _nearest(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre and the squared distance to it, for each row of one block."""
    dist = _distances(X, centers, np.einsum("ij,ij->i", centers, centers))
    labels = dist.argmin(axis=1)
    best = dist[np.arange(len(X)), labels] + np.einsum("ij,ij->i", X, X)
    return labels, np.maximum(best, 0.0)


def _blocks(part: Part):
    for s in range(0, len(part.X), ROW_BLOCK):
        yield part.X[s : s + ROW_BLOCK]


@compiled
def _assign_and_sum(
    X: np.ndarray, dist: np.ndarray, sums: np.ndarray, counts: np.ndarray
) -> None:  # pragma: no cover - compiled
    """For each row: its nearest centre (argmin of its distances), whose sum and count it joins.

    One compiled pass over the block while it is in cache, like scikit-learn's Cython Lloyd
    step: the NumPy equivalent (argmin, then a sparse one-hot product) took 0.094 s instead of
    0.069 s per 1M x 32 rows, k = 16.
    """
    for i in range(dist.shape[0]):
        best, best_dist = 0, dist[i, 0]
        for j in range(1, dist.shape[1]):
            if dist[i, j] < best_dist:
                best, best_dist = j, dist[i, j]
        counts[best] += 1
        for f in range(X.shape[1]):
            sums[best, f] += X[i, f]


def _partial_sums(part: Part, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map step: per-centre sums of the rows (k x d) and counts (k), accumulated in float64.

    Notes
    -----
    O(n k d) flops for the distances, a BLAS product per row block, then O(n (k + d)) for the
    assignment and the sums in one compiled pass (no Python loop, no ``np.add.at``). Returns
    k (d + 1) numbers whatever the partition size. Like scikit-learn's Lloyd iteration it skips
    the inertia, which needs ``||x||^2``; :func:`fit` computes it once, at the final centres.
    """
    k, d = centers.shape
    c = np.asfortranarray(centers, dtype=part.X.dtype)  # gemm takes it without a copy
    norms = np.einsum("ij,ij->i", c, c)
    sums, counts = np.zeros((k, d)), np.zeros(k)
    buffer = np.empty((k, ROW_BLOCK), part.X.dtype, order="F")
    for X in _blocks(part):
        _assign_and_sum(X, _distances(X, c, norms, out=buffer[:, : len(X)]), sums, counts)
    return sums, counts


def _update(centers: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, float]:
    """Update step: the new centres and the summed squared shift. Empty clusters stay put."""
    new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
    return new, float(((new - centers) ** 2).sum())


def _labels(part: Part, centers: np.ndarray) -> np.ndarray:
    c = centers.astype(part.X.dtype, copy=False)
    return np.concatenate([_nearest(X, c)[0] for X in _blocks(part)] or [np.zeros(0, int)])


def _inertia(part: Part, centers: np.ndarray) -> float:
    c = centers.astype(part.X.dtype, copy=False)
    return float(sum(_nearest(X, c)[1].sum() for X in _blocks(part)))


def _moments(part: Part) -> tuple[np.ndarray, np.ndarray, int]:
    X = part.X.astype(np.float64, copy=False)
    return X.sum(axis=0), np.einsum("ij,ij->j", X, X), len(X)


def _take_rows(part: Part, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows with these global indices that this partition holds, and their indices."""
    mine = rows[(rows >= part.start) & (rows < part.stop)]
    return mine, part.X[mine - part.start].astype(np.float64)


def _nearest_counts(part: Part, candidates: np.ndarray) -> np.ndarray:
    labels = _labels(part, candidates)
    return np.bincount(labels, minlength=len(candidates)).astype(np.float64)


def _sample(part: Part, candidates: np.ndarray, ell: float, phi: float, seed: int) -> np.ndarray:
    """Rows drawn independently with probability min(1, ell * d^2(x, C) / phi_X(C)).

    Each row's coin is drawn from its global index, so the sample does not depend on how
    the rows are partitioned.
    """
    c = candidates.astype(part.X.dtype, copy=False)
    dist = np.concatenate([_nearest(X, c)[1] for X in _blocks(part)])
    keep = row_uniforms(seed, part.start, part.stop) < ell * dist / phi
    return part.X[keep].astype(np.float64)


# ---------------------------------------------------------------- driver


def take_rows(steps: Steps, rows: np.ndarray) -> np.ndarray:
    """Fetch the rows with these global indices (in that order) from the workers."""
    pieces = steps.map(_take_rows, np.asarray(rows))
    index = np.concatenate([p[0] for p in pieces])
    values = np.concatenate([p[1] for p in pieces])
    order = np.argsort(index)
    return values[order][np.searchsorted(index[order], rows)]


def kmeans_parallel_init(steps: Steps, config: KMeansConfig) -> np.ndarray:
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


def initial_centers(steps: Steps, config: KMeansConfig) -> np.ndarray:
    """The starting centres for ``config.init``."""
    given = config.given_centers(steps.features)
    if given is not None:
        return given
    if config.init == "random":
        rows = np.random.default_rng(config.seed).choice(steps.rows, size=config.k, replace=False)
        return take_rows(steps, rows)
    return kmeans_parallel_init(steps, config)


def absolute_tol(steps: Steps, tol: float) -> float:
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


def _fit(steps: Steps, config: KMeansConfig) -> KMeansResult:
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
    return KMeansResult(centers, inertia, len(shifts), converged, shifts)


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


def explain(rows: int, features: int, workers: int, config: KMeansConfig) -> list[Step]:
    """One Lloyd iteration as the steps :func:`fit` runs (see ``scaling explain kmeans``)."""
    n, d, k, p = rows, features, config.k, workers
    steps = [
        Step(
            "map",
            "_partial_sums",
            f"each of {p} workers",
            "distances to the k centres (BLAS), nearest centre, per-centre sums and counts",
            2 * n * k * d / p + n * d / p,
            8 * k * (d + 1),
            # the rows, and each row's k distances: written by the product, read to assign
            reads=8 * n * (d + 2 * k) / p,
        ),
        Step(
            "combine",
            "add_each",
            f"workers, tree of depth {tree_depth(p)}",
            "add two partial (sums, counts)",
            k * (d + 1) * tree_depth(p),
            8 * k * (d + 1),
            "tree",
        ),
        Step(
            "update",
            "_update",
            "driver",
            "centre = sum / count (empty clusters stay); ships the k x d centres to each worker",
            k * d,
            8 * k * d,
            "scatter",
        ),
    ]
    return for_execution(steps, config.execution, p)


def quality(result: KMeansResult) -> dict:
    """What a run record reports about the fit."""
    return {"inertia": result.inertia, "n_iter": result.n_iter, "converged": result.converged}


class KMeans(Job):
    name = "kmeans"
    config = KMeansConfig
    demo_config = KMeansConfig(k=16, max_iter=10, tol=0.0)  # k-means|| then 10 Lloyd iterations
    iteration = ITERATION
    headline = "inertia"
    explain_note = (
        "Compute-bound: 2k flops per 8-byte value read, so it scales until the per-call "
        "overhead (the engine's) matches the shrinking map time. Communication is "
        "O(k d) per worker, independent of n."
    )
    fit = staticmethod(fit)
    synthetic = staticmethod(synthetic)
    baseline = staticmethod(baseline)
    explain = staticmethod(explain)
    quality = staticmethod(quality)

    def iterations(self, config: KMeansConfig) -> int:
        return config.max_iter

    def parameters(self, features: int, config: KMeansConfig) -> int:
        return config.k * features  # the centres

    def interview(self, ask) -> list:
        from scaling.present.interview import Answer

        a = Answer("How did you parallelise k-means, and does k-means always converge?")
        a.say(
            "Lloyd's algorithm is one map-reduce per iteration. Each worker assigns its rows to "
            "the nearest of the k centres and sums them per centre: "
            f"{ask.step(a, 'map', 'flops')} of work for the busiest, and a partial result of "
            f"{ask.step(a, 'map', 'sends')} (k sums of d values, and k counts) whatever its "
            "rows. The partial results add up in a tree (or an all-reduce among the workers) "
            "and each new centre is its sum over its count: the centres one machine computes, "
            "up to the order of the additions. Initialisation is k-means|| (Bahmani et al., "
            "VLDB 2012): a few rounds that each sample about 2k rows in parallel, instead of "
            "k-means++'s k passes one after the other, then k-means++ on those candidates, "
            "weighted, on the driver."
        )
        a.say(
            "It always converges, to a local optimum: neither the assignment nor the update "
            "can raise the inertia (the sum of squared distances to the nearest centre), and "
            "the rows have finitely many partitions into k clusters, so the centres stop "
            "moving. Which optimum depends on the initialisation: k-means|| is within "
            "O(log k) of the best in expectation, and restarts keep the best of several."
        )
        for r in [r for r in ask.records if "n_iter" in r.get("quality", {})][-1:]:
            a.say(
                f"Measured: run {r['run_id']} on {r['engine']} ({r['workers']} workers) "
                f"stopped after {ask.record(a, r, 'quality.n_iter', 'count')} iterations, at "
                f"inertia {ask.record(a, r, 'quality.inertia', 'count')}."
            )
        big = {"k": 1000}
        follow = Answer("Follow-up: what changes when k is large, say a thousand?")
        follow.say(
            "The partial result grows with k d: "
            f"{ask.step(follow, 'map', 'sends', config=big)} per worker at k = 1,000 against "
            f"{ask.step(follow, 'map', 'sends')} at k = {ask.config.k}, and so does the map: "
            f"{ask.step(follow, 'map', 'flops', config=big)} for the busiest worker. The map "
            "still divides by p, so k-means still scales; the cost is in the assignment, which "
            "an index over the centres or mini-batch k-means (Sculley, WWW 2010) cuts, and "
            "in k-means||'s candidates, which grow with k on the driver."
        )
        return [a, follow]

    def arrays(self, result: KMeansResult) -> dict[str, np.ndarray]:
        return {"centers": result.centers}


JOB = KMeans()
