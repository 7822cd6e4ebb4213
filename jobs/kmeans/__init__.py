"""Parallel k-means: Lloyd's algorithm as map -> combine -> update, k-means|| initialisation.

Run it (one line each; ``--workers 1,2`` runs once per count)::

    scaling run kmeans --engine local --rows 100000 --features 16 --k 8
    scaling run kmeans --engine ray   --workers 1,2 --rows 1000000 --features 32 --k 16
    scaling run kmeans --engine dask  --workers 2 --address tcp://127.0.0.1:8786 --data x.parquet
    scaling run kmeans --engine spark --workers 2 --init centres.npy --max-iter 10 --tol 0

One Lloyd iteration is one map-reduce (Chu et al., "Map-Reduce for Machine Learning on
Multicore", NIPS 2006, the "summation form"):

1. map (:func:`~jobs.kmeans.kernels._partial_sums`): on each partition, assign every row to
   its nearest centre (a BLAS product per row block) and sum the rows and count them, per
   centre;
2. combine (:func:`~scaling.execution.add_each`): add the partial results up;
3. update (:func:`~jobs.kmeans.kernels._update`): centre = sum / count; an empty cluster keeps
   its previous centre.

The fit (:func:`~jobs.kmeans.solver._fit`) is written once and runs in either execution
(``--execution``, :mod:`scaling.execution`): ``driver``, one engine call per iteration, the
partial results added in a tree on the workers and the update on the driver (what Spark MLlib
and dask-ml do); or ``allreduce``, the whole fit inside one gang, the partial results
all-reduced among the workers and the update applied by each of them.

Initialisation by k-means|| follows algorithm 2 of Bahmani et al., "Scalable K-Means++",
VLDB 2012; its steps are numbered as in the paper in
:func:`~jobs.kmeans.solver.kmeans_parallel_init`.

The package: :mod:`~jobs.kmeans.config` (options, result), :mod:`~jobs.kmeans.kernels` (what
runs on a partition), :mod:`~jobs.kmeans.solver` (the fit), :mod:`~jobs.kmeans.steps` (what
``explain`` prints), :mod:`~jobs.kmeans.interview` (its own questions) and this module's Job.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from jobs.kmeans.config import ITERATION, KMeansConfig, KMeansResult
from jobs.kmeans.solver import baseline, fit, predict, synthetic
from jobs.kmeans.steps import explain
from scaling.data import Source
from scaling.engines import Dataset, Engine
from scaling.job import NO_CONTEXT, Baseline, Job, RunContext
from scaling.model.steps import Step


class KMeans(Job[KMeansConfig, KMeansResult]):
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

    def fit(
        self,
        engine: Engine,
        ds: Dataset,
        config: KMeansConfig,
        context: RunContext = NO_CONTEXT,
    ) -> KMeansResult:
        return fit(engine, ds, config, context.on_iteration)

    def synthetic(self, rows: int, features: int, seed: int, config: KMeansConfig) -> Source:
        return synthetic(rows, features, seed, config)

    def baseline(self, source: Source, config: KMeansConfig, dtype: str = "float64") -> Baseline:
        return baseline(source, config, dtype)

    def explain(self, rows: int, features: int, workers: int, config: KMeansConfig) -> list[Step]:
        return explain(rows, features, workers, config)

    def quality(self, result: KMeansResult) -> dict:
        return {"inertia": result.inertia, "n_iter": result.n_iter, "converged": result.converged}

    def iterations(self, config: KMeansConfig) -> int:
        return config.max_iter

    def timed(self, config: KMeansConfig, iterations: int) -> KMeansConfig:
        return replace(config, max_iter=iterations, tol=0.0, init="random")

    def parameters(self, features: int, config: KMeansConfig) -> int:
        return config.k * features  # the centres

    def arrays(self, result: KMeansResult) -> dict[str, np.ndarray]:
        return {"centers": result.centers}


JOB = KMeans()

__all__ = [
    "ITERATION",
    "JOB",
    "KMeansConfig",
    "KMeansResult",
    "baseline",
    "explain",
    "fit",
    "predict",
    "synthetic",
]
