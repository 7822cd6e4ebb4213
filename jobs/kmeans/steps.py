"""One Lloyd iteration as the steps :func:`jobs.kmeans.solver.fit` runs (``scaling explain
kmeans``)."""

from __future__ import annotations

from jobs.kmeans.config import KMeansConfig
from scaling.model.steps import Step, for_execution, tree_depth


def explain(rows: int, features: int, workers: int, config: KMeansConfig) -> list[Step]:
    """One Lloyd iteration as the steps :func:`fit` runs (see ``scaling explain kmeans``)."""
    n, d, k, p = rows, features, config.k, workers
    steps = [
        Step(
            kind="map",
            function="kernels._partial_sums",
            where=f"each of {p} workers",
            does="distances to the k centres (BLAS), nearest centre, per-centre sums and counts",
            flops=2 * n * k * d / p + n * d / p,
            sends=8 * k * (d + 1),
            # the rows, and each row's k distances: written by the product, read to assign
            reads=8 * n * (d + 2 * k) / p,
        ),
        Step(
            kind="combine",
            function="scaling.execution.add_each",
            where=f"workers, tree of depth {tree_depth(p)}",
            does="add two partial (sums, counts)",
            flops=k * (d + 1) * tree_depth(p),
            sends=8 * k * (d + 1),
            pattern="tree",
        ),
        Step(
            kind="update",
            function="kernels._update",
            where="driver",
            does="centre = sum / count (empty clusters stay); ships the k x d centres to each "
            "worker",
            flops=k * d,
            sends=8 * k * d,
            pattern="scatter",
        ),
    ]
    return for_execution(steps, config.execution, p)
