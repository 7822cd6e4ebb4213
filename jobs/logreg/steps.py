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
                "map",
                "kernels._admm_local",
                f"each of {p} workers",
                "solve the partition's regularised problem to convergence (local L-BFGS, ~30 "
                "gradient passes)",
                30 * 4 * n * d / p,
                x,
                reads=30 * 2 * 8 * n * d / p,  # X w and X^T r: two passes over the rows
            ),
            Step(
                "combine",
                "scaling.execution.add",
                tree,
                "gather the x_i (a sum of disjoint rows)",
                x / 8,
                x,
                "tree",
            ),
            Step(
                "update",
                "solver._admm_consensus",
                "driver",
                "z = shrunk mean of x_i + u_i; u_i += x_i - z; residuals; ships z - u_i",
                4 * p * (d + 1),
                x,
                "scatter",
            ),
        ]
        return for_execution(steps, config.execution, p)
    newton = config.solver == "newton"
    partial = 8 * (d + 3 + ((d + 1) ** 2 if newton else 0))
    steps = [
        Step(
            "map",
            "kernels._loss_grad_hess" if newton else "kernels._loss_grad",
            f"each of {p} workers",
            "z = X w (BLAS), loss and residual (one compiled pass), gradient X^T r"
            + (", Hessian X^T S X" if newton else ""),
            4 * n * d / p + (2 * n * d * d / p if newton else 0),
            partial,
            reads=2 * 8 * n * d / p,  # X w, then X^T r (and X^T S X in the same pass)
        ),
        Step(
            "combine",
            "scaling.execution.add_each",
            tree,
            "add partial loss, gradient" + (", Hessian" if newton else ""),
            partial / 8 * tree_depth(p),
            partial,
            "tree",
        ),
        Step(
            "update",
            "solver._newton" if newton else "solver._lbfgs",
            "driver",
            "solve (H + I/C) step = g, backtrack"
            if newton
            else "L-BFGS-B picks the next point (two-loop recursion, m=10)",
            (d + 1) ** 3 / 3 if newton else 40 * (d + 1),
            8 * (d + 1),
            "scatter",
        ),
    ]
    return for_execution(steps, config.execution, p)
