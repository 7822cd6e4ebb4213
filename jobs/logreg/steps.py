"""One iteration of each solver as the steps :func:`jobs.logreg.solver.fit` runs (``scaling
explain logreg``)."""

from __future__ import annotations

from jobs.logreg.config import LogRegConfig
from scaling.model.steps import Step, for_execution, tree_depth


def explain(rows: int, features: int, workers: int, config: LogRegConfig) -> list[Step]:
    """One step of ``config.solver`` as the steps :func:`~jobs.logreg.solver.fit` runs."""
    n, d, p = rows, features, workers
    tree = f"workers, tree of depth {tree_depth(p)}"
    if config.solver == "admm":
        x = 8 * p * (d + 1)  # one partition per worker: the x_i of all of them
        steps = [
            Step(
                kind="map",
                function="kernels._admm_local",
                where=f"each of {p} workers",
                does="solve the partition's regularised problem to convergence (local L-BFGS, ~30 "
                "gradient passes)",
                flops=30 * 4 * n * d / p,
                sends=x,
                reads=30 * 2 * 8 * n * d / p,  # X w and X^T r: two passes over the rows
            ),
            Step(
                kind="combine",
                function="scaling.execution.add",
                where=tree,
                does="gather the x_i (a sum of disjoint rows)",
                flops=x / 8,
                sends=x,
                pattern="tree",
            ),
            Step(
                kind="update",
                function="solver._admm_consensus",
                where="driver",
                does="z = shrunk mean of x_i + u_i; u_i += x_i - z; residuals; ships z - u_i",
                flops=4 * p * (d + 1),
                sends=x,
                pattern="scatter",
            ),
        ]
        return for_execution(steps, config.execution, p)
    newton = config.solver == "newton"
    partial = 8 * (d + 3 + ((d + 1) ** 2 if newton else 0))
    steps = [
        Step(
            kind="map",
            function="kernels._loss_grad_hess" if newton else "kernels._loss_grad",
            where=f"each of {p} workers",
            does="z = X w (BLAS), loss and residual (one compiled pass), gradient X^T r"
            + (", Hessian X^T S X" if newton else ""),
            flops=4 * n * d / p + (2 * n * d * d / p if newton else 0),
            sends=partial,
            reads=2 * 8 * n * d / p,  # X w, then X^T r (and X^T S X in the same pass)
        ),
        Step(
            kind="combine",
            function="scaling.execution.add_each",
            where=tree,
            does="add partial loss, gradient" + (", Hessian" if newton else ""),
            flops=partial / 8 * tree_depth(p),
            sends=partial,
            pattern="tree",
        ),
        Step(
            kind="update",
            function="solver._newton" if newton else "solver._lbfgs",
            where="driver",
            does="solve (H + I/C) step = g, backtrack"
            if newton
            else "L-BFGS-B picks the next point (two-loop recursion, m=10)",
            flops=(d + 1) ** 3 / 3 if newton else 40 * (d + 1),
            sends=8 * (d + 1),
            pattern="scatter",
        ),
    ]
    return for_execution(steps, config.execution, p)
