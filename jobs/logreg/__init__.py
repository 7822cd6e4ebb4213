"""Distributed binary logistic regression: L-BFGS over a gradient map-reduce, Newton, ADMM.

Run it (one line each)::

    scaling run logreg --engine local --rows 100000 --features 16
    scaling run logreg --engine ray   --workers 1,2 --rows 1000000 --features 32 --C 1
    scaling run logreg --engine dask  --workers 2 --solver admm --rho 1
    scaling run logreg --engine spark --workers 2 --solver newton --data d.parquet --label y

The objective is scikit-learn's, ``F(w, b) = sum_i log(1 + exp(-s_i (x_i.w + b))) +
||w||^2 / (2 C)`` (the intercept is not penalised; ``C=inf``: no penalty), minimised in the
scaled form F / n so that ``tol`` means what it means in scikit-learn. Why it parallelises
easily: F and its gradient are sums over rows (Chu et al., NIPS 2006, the "summation form").

- ``lbfgs``: each evaluation is one map-reduce, map (:func:`~jobs.logreg.kernels._loss_grad`:
  the partition's loss and gradient, d + 2 numbers) -> combine
  (:func:`~scaling.execution.add_each`: sum) -> update on the driver (scipy's L-BFGS-B picks
  the next point). What Spark MLlib does with treeAggregate.
- ``newton``: the map also returns the partition's Hessian
  (:func:`~jobs.logreg.kernels._loss_grad_hess`, (d + 1)^2 numbers): more bytes per step, far
  fewer steps.
- ``admm``: consensus ADMM (Boyd et al., "Distributed Optimization and Statistical Learning
  via the Alternating Direction Method of Multipliers", 2011, sections 7.1 and 8.2): each
  partition solves its own regularised problem (:func:`~jobs.logreg.kernels._admm_local`), the
  driver forms the consensus (:func:`~jobs.logreg.solver._admm_consensus`) and the dual update;
  residual-based stopping (3.3.1) and residual balancing of rho (3.4.1).
  Supports ``penalty="l1"`` (soft thresholding in the consensus step). The local solutions
  come back as a sum (each partition fills its own row of a partitions x (d + 1) array).

The solvers (:func:`~jobs.logreg.solver._solve`) are written once against
:class:`~scaling.execution.Loop`: with ``execution="driver"`` every sum is an engine call and
the update runs on the driver; with ``"allreduce"`` the solver runs on every worker inside one
gang, the sums are all-reduced among them, and every worker takes the same step (scipy's
L-BFGS-B is deterministic).

The package: :mod:`~jobs.logreg.config` (options, result), :mod:`~jobs.logreg.kernels` (what
runs on a partition), :mod:`~jobs.logreg.solver` (the solvers), :mod:`~jobs.logreg.steps` (what
``explain`` prints), :mod:`~jobs.logreg.interview` (its own questions) and this module's Job.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np

from jobs.logreg.config import ITERATION, LogRegConfig, LogRegResult
from jobs.logreg.solver import baseline, fit, synthetic
from jobs.logreg.steps import explain
from scaling.data import Source
from scaling.engines import Dataset, Engine
from scaling.job import NO_CONTEXT, Baseline, Job, RunContext
from scaling.model.steps import Step


class LogReg(Job[LogRegConfig, LogRegResult]):
    name = "logreg"
    config = LogRegConfig
    demo_config = LogRegConfig(max_iter=10, tol=1e-12)  # 10 L-BFGS iterations
    iteration = ITERATION
    headline = "objective"
    explain_note = (
        "Memory-bound: a gradient pass does ~4 flops per 8-byte value read, so per-step "
        "engine overhead shows early. L-BFGS sends d + 3 numbers per worker per step; "
        "Newton (d + 1)^2 more for far fewer steps; ADMM d + 1 per partition but does a "
        "whole local solve per step."
    )
    variants: ClassVar[dict[str, dict]] = {
        "lbfgs driver": {},
        "lbfgs allreduce": {"execution": "allreduce"},
        "newton": {"solver": "newton"},
        "admm": {"solver": "admm"},
    }

    def fit(
        self,
        engine: Engine,
        ds: Dataset,
        config: LogRegConfig,
        context: RunContext = NO_CONTEXT,
    ) -> LogRegResult:
        return fit(engine, ds, config, context.on_iteration)

    def synthetic(self, rows: int, features: int, seed: int, config: LogRegConfig) -> Source:
        return synthetic(rows, features, seed, config)

    def baseline(self, source: Source, config: LogRegConfig, dtype: str = "float64") -> Baseline:
        return baseline(source, config, dtype)

    def explain(self, rows: int, features: int, workers: int, config: LogRegConfig) -> list[Step]:
        return explain(rows, features, workers, config)

    def quality(self, result: LogRegResult) -> dict:
        out = {"objective": result.objective, "n_iter": result.n_iter}
        out["converged"] = result.converged
        for split, values in result.metrics.items():
            out.update({f"{split}_{k}": v for k, v in values.items()})
        return out

    def iterations(self, config: LogRegConfig) -> int:
        # L-BFGS may evaluate more than once per iteration (line search): a bar may overrun.
        return config.max_iter

    def timed(self, config: LogRegConfig, iterations: int) -> LogRegConfig:
        return replace(config, max_iter=iterations, tol=1e-300)

    def sample_partitions(self, config: LogRegConfig, workers: int) -> int:
        # ADMM's inner L-BFGS steps per iteration change with p: measured per row at 2, 4 and 8
        # workers, 1.0 : 3.5 : 1.4 on one scale model (costmodel-emulated-8.md)
        return workers if config.solver == "admm" else 1

    def parameters(self, features: int, config: LogRegConfig) -> int:
        return features + 1  # the weights and the intercept

    def arrays(self, result: LogRegResult) -> dict[str, np.ndarray]:
        return {"coef": np.r_[result.coef, result.intercept]}  # the intercept last


JOB = LogReg()

__all__ = [
    "ITERATION",
    "JOB",
    "LogRegConfig",
    "LogRegResult",
    "baseline",
    "explain",
    "fit",
    "synthetic",
]
