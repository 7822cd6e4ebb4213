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
            "map",
            "kernels._partial_sums",
            f"each of {p} workers",
            "distances to the k centres (BLAS), nearest centre, per-centre sums and counts",
            2 * n * k * d / p + n * d / p,
            8 * k * (d + 1),
            # the rows, and each row's k distances: written by the product, read to assign
            reads=8 * n * (d + 2 * k) / p,
        ),
        Step(
            "combine",
            "scaling.execution.add_each",
            f"workers, tree of depth {tree_depth(p)}",
            "add two partial (sums, counts)",
            k * (d + 1) * tree_depth(p),
            8 * k * (d + 1),
            "tree",
        ),
        Step(
            "update",
            "kernels._update",
            "driver",
            "centre = sum / count (empty clusters stay); ships the k x d centres to each worker",
            k * d,
            8 * k * d,
            "scatter",
        ),
    ]
    return for_execution(steps, config.execution, p)
