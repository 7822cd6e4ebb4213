"""The solvers, written once against the loop of :mod:`scaling.execution` (either execution):
L-BFGS and Newton on the summed loss and gradient, ADMM's consensus over the partitions' local
solves; and the single-thread baseline."""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np

from jobs.logreg.config import ITERATION, LogRegConfig, LogRegResult
from jobs.logreg.kernels import (
    _admm_local,
    _describe,
    _describe_combine,
    _loss_grad,
    _loss_grad_hess,
    _metrics,
    _train_rows,
)
from scaling.data import Classification, Source
from scaling.engines import Dataset, Engine
from scaling.errors import DataError
from scaling.execution import Loop, add, add_each, execute
from scaling.job import Baseline, OnIteration


@dataclass(kw_only=True)
class _Problem:
    """What every step needs: where the data is, its labels, and the objective's scaling."""

    steps: Loop
    config: LogRegConfig
    positive: object
    n: int  # training rows

    @property
    def args(self) -> tuple:
        return self.positive, self.config.holdout, self.config.seed

    def penalty(self, wb: np.ndarray) -> tuple[float, np.ndarray]:
        """||w||^2 / (2C) and its gradient (the intercept is not penalised)."""
        grad = np.zeros_like(wb)
        if math.isinf(self.config.C):
            return 0.0, grad
        grad[:-1] = wb[:-1] / self.config.C
        return float(wb[:-1] @ wb[:-1]) / (2 * self.config.C), grad

    def objective(self, wb: np.ndarray) -> float:
        """F(w, b), unscaled, as scikit-learn reports it."""
        loss, _, _ = self.steps.map_reduce(_loss_grad, add_each, wb, *self.args)
        return loss + self.penalty(wb)[0]


def _check(steps: Loop, config: LogRegConfig) -> tuple[list, int, list[str]]:
    """Binary labels and enough rows; the classes, the training rows and warnings (returned,
    not raised: on a gang member a warning would not reach the user)."""
    # Column ranges only matter without a penalty (constant columns are then unidentifiable).
    no_penalty = math.isinf(config.C)
    # A map, not a map-reduce: the combine (a union, a min and a max) is not a sum.
    labels, lo, hi = functools.reduce(_describe_combine, steps.map(_describe, no_penalty))
    classes = sorted(labels)
    if len(classes) == 1:
        raise DataError(
            f"the labels hold one class only ({classes[0]!r}); logistic regression "
            "needs samples of 2 classes"
        )
    if len(classes) > 2:
        shown = classes[:5] + (["..."] if len(classes) > 5 else [])
        raise DataError(
            f"logistic regression here is binary, but the labels hold "
            f"{len(classes)} classes {shown}; map them to two classes first"
        )
    notes = []
    constant = np.flatnonzero(lo == hi) if no_penalty else []
    if len(constant):
        notes.append(
            f"features {constant.tolist()} are constant: with no penalty (C=inf) their "
            "weights are not identifiable (collinear with the intercept); add a "
            "penalty or drop them"
        )
    n = steps.rows
    if config.holdout:
        n = steps.map_reduce(_train_rows, add, classes[1], config.holdout, config.seed)
    if n == 0:
        raise DataError("no training rows left: lower --holdout")
    return classes, n, notes


def fit(
    engine: Engine,
    ds: Dataset,
    config: LogRegConfig,
    on_iteration: OnIteration | None = None,
) -> LogRegResult:
    """Fit binary logistic regression on a labelled dataset cached on ``engine``.

    Parameters
    ----------
    engine, ds : Engine, Dataset
        Where the rows are (``engine.load(source)`` with a labelled source).
    config : LogRegConfig
        Solver, C, penalty, stopping rule, held-out fraction.
    on_iteration : callable, optional
        ``on_iteration(iteration, measure)``: measure is the scaled gradient's largest
        component (L-BFGS, Newton) or the primal residual (ADMM).

    Notes
    -----
    Per step, each of p workers does O(n d / p) work (Newton: O(n d^2 / p)) and sends d + 3
    numbers (Newton: + (d + 1)^2) up a combine tree of depth log2(p); ADMM instead solves a
    local problem to convergence per step and sends d + 1 numbers. Each step is a trace span
    ``step``.
    """
    if not ds.labelled:
        raise DataError("logistic regression needs labels: pass --label COLUMN with --data")
    result = execute(
        engine, ds, config.execution, _solve, config, iteration=ITERATION, on_iteration=on_iteration
    )
    for note in result.notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    return result


def _solve(steps: Loop, config: LogRegConfig) -> LogRegResult:
    """The checks, the solver and the final metrics, written once for both executions."""
    with steps.span("init"):
        classes, n, notes = _check(steps, config)
    problem = _Problem(steps=steps, config=config, positive=classes[1], n=n)
    solve = {"lbfgs": _lbfgs, "newton": _newton, "admm": _admm}[config.solver]
    wb, n_iter, converged, history = solve(problem)
    with steps.span("final"):
        metrics, train_loss = _all_metrics(problem, wb)
    objective = train_loss + problem.penalty(wb)[0]
    return LogRegResult(
        coef=wb[:-1].copy(),
        intercept=float(wb[-1]),
        objective=objective,
        n_iter=n_iter,
        converged=converged,
        classes=classes,
        metrics=metrics,
        history=history,
        notes=notes,
    )


def _lbfgs(problem: _Problem) -> tuple:
    history: list[dict] = []
    config, n = problem.config, problem.n

    def fun(wb: np.ndarray) -> tuple[float, np.ndarray]:
        with problem.steps.iteration():
            loss, grad, _ = problem.steps.map_reduce(_loss_grad, add_each, wb, *problem.args)
        reg, reg_grad = problem.penalty(wb)
        f, g = (loss + reg) / n, (grad + reg_grad) / n
        history.append({"objective": f * n, "grad_max": float(np.abs(g).max())})
        return f, g

    iterations = []

    def callback(intermediate_result) -> None:
        iterations.append(history[-1]["grad_max"])
        problem.steps.progress(len(iterations) - 1, iterations[-1])

    from scipy.optimize import minimize

    # The same settings as scikit-learn's lbfgs solver, so that tol means the same there.
    res = minimize(
        fun,
        np.zeros(problem.steps.features + 1),
        jac=True,
        method="L-BFGS-B",
        callback=callback,
        options={
            "maxiter": config.max_iter,
            "gtol": config.tol,
            "maxls": 50,
            "ftol": 64 * np.finfo(float).eps,
        },
    )
    return res.x, res.nit, bool(res.success), history


def _newton(problem: _Problem) -> tuple:
    config, n, d = problem.config, problem.n, problem.steps.features
    ridge = np.zeros(d + 1) if math.isinf(config.C) else np.r_[np.full(d, 1 / config.C), 0.0]
    wb, history, converged = np.zeros(d + 1), [], False
    for it in range(config.max_iter):
        with problem.steps.iteration():
            loss, grad, _, hess = problem.steps.map_reduce(
                _loss_grad_hess, add_each, wb, *problem.args
            )
        reg, reg_grad = problem.penalty(wb)
        f, g = loss + reg, grad + reg_grad
        history.append({"objective": f, "grad_max": float(np.abs(g).max() / n)})
        problem.steps.progress(it, history[-1]["grad_max"])
        if history[-1]["grad_max"] <= config.tol:
            converged = True
            break
        step = np.linalg.lstsq(hess + np.diag(ridge), g, rcond=None)[0]
        t = 1.0  # backtracking (Armijo): each trial is one more loss-only map-reduce
        while t > 1e-8 and problem.objective(wb - t * step) > f - 1e-4 * t * (g @ step):
            t /= 2
        wb = wb - t * step
    return wb, len(history), converged, history


def _admm(problem: _Problem) -> tuple:
    config, n, d = problem.config, problem.n, problem.steps.features
    blocks, rho, eps = problem.steps.partitions, config.rho, config.tol
    x = np.zeros((blocks, d + 1))  # local solutions x_i, one row per partition
    u = np.zeros((blocks, d + 1))  # scaled duals u_i
    z = np.zeros(d + 1)
    history, converged = [], False
    for it in range(config.max_iter):
        with problem.steps.iteration():
            x = problem.steps.map_reduce(_admm_local, add, z - u, x, rho, n, *problem.args)
            z_old, z = z, _admm_consensus(x, u, rho, config, n)
            u = u + x - z
        # Residuals and tolerances: Boyd et al. 2011, section 3.3.1.
        primal = float(np.linalg.norm(x - z))
        dual = float(rho * math.sqrt(blocks) * np.linalg.norm(z - z_old))
        scale = math.sqrt(blocks * (d + 1))
        eps_primal = scale * eps + eps * max(
            np.linalg.norm(x), math.sqrt(blocks) * np.linalg.norm(z)
        )
        eps_dual = scale * eps + eps * rho * np.linalg.norm(u)
        history.append({"primal_residual": primal, "dual_residual": dual, "rho": rho})
        problem.steps.progress(it, primal)
        if primal <= eps_primal and dual <= eps_dual:
            converged = True
            break
        # Residual balancing (Boyd et al. 2011, 3.4.1): keep the residuals within 10x of each
        # other; u is scaled by 1/rho, so it is rescaled with rho.
        if primal > 10 * dual or dual > 10 * primal:
            factor = 2.0 if primal > dual else 0.5
            rho, u = rho * factor, u / factor
    return z, len(history), converged, history


def _admm_consensus(
    x: np.ndarray, u: np.ndarray, rho: float, config: LogRegConfig, n: int
) -> np.ndarray:
    """z-update: argmin_z g(z) + (N rho / 2) ||z - mean(x_i + u_i)||^2, g = penalty / n."""
    blocks = len(x)
    mean = (x + u).mean(axis=0)
    z = mean.copy()  # the intercept is not penalised
    if math.isinf(config.C):
        return z
    lam = 1.0 / (config.C * n)
    if config.penalty == "l2":
        z[:-1] = blocks * rho * mean[:-1] / (lam + blocks * rho)
    else:  # l1: soft thresholding
        k = lam / (blocks * rho)
        z[:-1] = np.sign(mean[:-1]) * np.maximum(np.abs(mean[:-1]) - k, 0.0)
    return z


def _all_metrics(problem: _Problem, wb: np.ndarray) -> tuple[dict, float]:
    """Metrics of the training (and held-out) rows, and the training rows' summed loss."""
    out, train_loss = {}, 0.0
    for name, train in (("train", True), ("test", False)):
        if not train and problem.config.holdout == 0:
            continue
        loss, correct, count, pos, neg = problem.steps.map_reduce(
            _metrics, add_each, wb, *problem.args, train
        )
        train_loss = loss if train else train_loss
        out[name] = {
            "log_loss": loss / count,
            "accuracy": correct / count,
            "roc_auc": _auc(pos, neg),
            "rows": int(count),
        }
    return out, train_loss


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC from per-class histograms of scores (ties within a bin count one half)."""
    negatives_below = np.cumsum(neg) - neg
    pairs = float(pos.sum()) * float(neg.sum())
    if pairs == 0:
        return float("nan")
    return float((pos * (negatives_below + 0.5 * neg)).sum() / pairs)


def synthetic(rows: int, features: int, seed: int, config: LogRegConfig) -> Classification:
    """The data ``scaling run/sweep logreg`` use without ``--data``: known true weights."""
    return Classification(rows=rows, features=features, seed=seed)


def baseline(source: Source, config: LogRegConfig, dtype: str = "float64") -> Baseline:
    """scikit-learn's lbfgs LogisticRegression on the same rows, ``fit(n)`` running n
    iterations: the COST reference (the runner times it on one thread)."""
    from sklearn.linear_model import LogisticRegression

    X, y = source.read(0, source.rows)
    X = X.astype(dtype, copy=False)

    def fit(iters: int) -> LogisticRegression:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: stopping early is the point
            return LogisticRegression(C=config.C, tol=1e-12, max_iter=iters).fit(X, y)

    return Baseline("scikit-learn LogisticRegression(lbfgs), 1 thread", fit)
