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

- ``lbfgs``: each evaluation is one map-reduce, map (:func:`_loss_grad`: the partition's loss
  and gradient, d + 2 numbers) -> combine (:func:`~scaling.execution.add_each`: sum) -> update on
  the driver (scipy's L-BFGS-B picks the next point). What Spark MLlib does with treeAggregate.
- ``newton``: the map also returns the partition's Hessian (:func:`_loss_grad_hess`, (d + 1)^2
  numbers): more bytes per step, far fewer steps.
- ``admm``: consensus ADMM (Boyd et al., "Distributed Optimization and Statistical Learning
  via the Alternating Direction Method of Multipliers", 2011, sections 7.1 and 8.2): each
  partition solves its own regularised problem (:func:`_admm_local`), the driver forms the
  consensus (:func:`_admm_consensus`) and the dual update; residual-based stopping (3.3.1)
  and residual balancing of rho (3.4.1).
  Supports ``penalty="l1"`` (soft thresholding in the consensus step). The local solutions
  come back as a sum (each partition fills its own row of a partitions x (d + 1) array).

The solvers (:func:`_solve`) are written once against :class:`~scaling.execution.Steps`: with
``execution="driver"`` every sum is an engine call and the update runs on the driver; with
``"allreduce"`` the solver runs on every worker inside one gang, the sums are all-reduced among
them, and every worker takes the same step (scipy's L-BFGS-B is deterministic).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from jobs.common import compiled
from scaling.data import Classification, Part, Source, held_out
from scaling.engines import Dataset, Engine
from scaling.errors import DataError, UsageError, check_choice, check_count
from scaling.execution import EXECUTIONS, Steps, add, add_each, execute
from scaling.job import Baseline, Job, OnIteration
from scaling.model.explain import Step, for_execution, tree_depth

ITERATION = "step"
"""Trace span of one map-reduce step (one L-BFGS evaluation, Newton or ADMM iteration)."""
SOLVERS = ("lbfgs", "newton", "admm")
PENALTIES = ("l2", "l1")
AUC_BINS = 1 << 14


@dataclass(frozen=True)
class LogRegConfig:
    """Validated logistic-regression settings.

    ``C`` is the inverse regularisation strength, as in scikit-learn (``inf``: no penalty).
    ``tol``: L-BFGS and Newton stop when the largest gradient component of F / n is at most
    ``tol``; ADMM when both residuals are within ``tol`` (absolute and relative, Boyd 3.3.1).
    ``holdout``: fraction of rows (chosen by row, whatever the partitioning) kept out of
    training and scored separately. ``execution``: ``driver`` (one engine call per step) or
    ``allreduce`` (the solver runs on every worker in one gang, the sums all-reduced among
    them; :mod:`scaling.execution`).
    """

    solver: str = "lbfgs"
    C: float = 1.0
    penalty: str = "l2"
    max_iter: int = 100
    tol: float = 1e-6
    rho: float = 0.1
    holdout: float = 0.0
    seed: int = 0
    execution: str = "driver"

    def __post_init__(self) -> None:
        check_choice("solver", self.solver, SOLVERS)
        check_choice("execution", self.execution, EXECUTIONS)
        check_choice("penalty", self.penalty, PENALTIES)
        if self.penalty == "l1" and self.solver != "admm":
            raise UsageError("penalty='l1' is not differentiable: use --solver admm")
        if not self.C > 0:
            raise UsageError(f"C must be > 0 (inf for no penalty), got {self.C!r}")
        check_count("max_iter", self.max_iter)
        if not self.tol > 0 or not self.rho > 0:
            raise UsageError(f"tol and rho must be > 0, got {self.tol!r} and {self.rho!r}")
        if not 0 <= self.holdout < 1:
            raise UsageError(f"holdout must be in [0, 1), got {self.holdout!r}")


@dataclass
class LogRegResult:
    """Coefficients, intercept, the objective F at them, metrics and the per-step history."""

    coef: np.ndarray
    intercept: float
    objective: float
    n_iter: int
    converged: bool
    classes: list
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings about the data


# ---------------------------------------------------------------- per-partition kernels


def _rows(part: Part, positive, holdout: float, seed: int, train: bool = True):
    """X and 0/1 labels of the training (or held-out) rows of a partition."""
    y = (part.y == positive).astype(part.X.dtype)
    if holdout == 0:
        return (part.X, y) if train else (part.X[:0], y[:0])
    held = held_out(seed, part.start, part.stop, holdout)
    keep = ~held if train else held
    return part.X[keep], y[keep]


@compiled
def _loss_and_residual(
    z: np.ndarray, y: np.ndarray, residual: np.ndarray
) -> float:  # pragma: no cover - compiled
    """Summed log-loss ``log(1 + e^z) - y z`` and ``residual = sigmoid(z) - y``, in one pass.

    One exp and one log1p per row, stable for any z (like scikit-learn's Cython loss): NumPy's
    separate ``logaddexp`` and ``expit`` passes took 19 ms instead of 6 ms per million rows.
    """
    loss = 0.0
    for i in range(z.shape[0]):
        zi = z[i]
        e = math.exp(-abs(zi))
        loss += max(zi, 0.0) + math.log1p(e) - y[i] * zi
        p = 1.0 / (1.0 + e) if zi >= 0 else e / (1.0 + e)
        residual[i] = p - y[i]
    return loss


def _loss_grad(part: Part, wb: np.ndarray, positive, holdout: float, seed: int) -> tuple:
    """Map step: the partition's summed log-loss, its gradient (d + 1) and row count.

    Notes
    -----
    Two matrix-vector products (BLAS) and one compiled pass, O(n d); returns d + 3 numbers
    whatever the partition size.
    """
    X, y = _rows(part, positive, holdout, seed)
    z = X @ wb[:-1].astype(X.dtype, copy=False) + wb[-1]
    residual = np.empty_like(z)
    loss = _loss_and_residual(z, y, residual)
    grad = np.empty(len(wb))
    grad[:-1] = X.T @ residual
    grad[-1] = residual.sum()
    return loss, grad, len(X)


def _loss_grad_hess(part: Part, wb: np.ndarray, positive, holdout: float, seed: int) -> tuple:
    """Map step for Newton: loss, gradient, and the Hessian ``[X 1]^T S [X 1]`` ((d+1)^2).

    Notes
    -----
    O(n d^2) flops for the Hessian, which is what each worker sends: (d + 1)^2 numbers.
    """
    loss, grad, n = _loss_grad(part, wb, positive, holdout, seed)
    from scipy.special import expit

    X, _ = _rows(part, positive, holdout, seed)
    z = X @ wb[:-1].astype(X.dtype, copy=False) + wb[-1]
    p = expit(z)
    s = (p * (1 - p)).astype(X.dtype)
    d = len(wb) - 1
    hess = np.empty((d + 1, d + 1))
    hess[:d, :d] = X.T @ (X * s[:, None])
    hess[:d, d] = hess[d, :d] = X.T @ s
    hess[d, d] = s.sum()
    return loss, grad, n, hess


def _admm_local(
    part: Part,
    targets: np.ndarray,
    starts: np.ndarray,
    rho: float,
    n: int,
    positive,
    holdout: float,
    seed: int,
) -> np.ndarray:
    """ADMM x-update on one partition: argmin_x f_i(x) + rho/2 ||x - v_i||^2.

    ``f_i`` is this partition's share of F / n; ``v_i = z - u_i`` is ``targets[part.index]``,
    and the previous ``x_i`` (``starts[part.index]``) warm-starts L-BFGS. No communication:
    the whole solve runs where the partition lives. Returns every partition's row of x, zero
    but this one's, so that the x of all partitions is a sum (blocks x (d + 1) numbers), which
    either execution can add up.
    """
    v, x0 = targets[part.index], starts[part.index]

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad, _ = _loss_grad(part, x, positive, holdout, seed)
        diff = x - v
        return loss / n + 0.5 * rho * diff @ diff, grad / n + rho * diff

    from scipy.optimize import minimize

    res = minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-10, "ftol": 64 * np.finfo(float).eps, "maxiter": 500},
    )
    out = np.zeros_like(starts)
    out[part.index] = res.x
    return out


def _metrics(part: Part, wb: np.ndarray, positive, holdout: float, seed: int, train: bool) -> tuple:
    """Loss, correct predictions, rows, and histograms of P(y=1) per class (for ROC AUC)."""
    from scipy.special import expit

    X, y = _rows(part, positive, holdout, seed, train)
    z = X @ wb[:-1].astype(X.dtype, copy=False) + wb[-1]
    loss = _loss_and_residual(z, y, np.empty_like(z))
    correct = int(np.sum((z > 0) == (y > 0)))
    bins = np.minimum((expit(z) * AUC_BINS).astype(np.int64), AUC_BINS - 1)
    pos = np.bincount(bins[y > 0], minlength=AUC_BINS)
    neg = np.bincount(bins[y == 0], minlength=AUC_BINS)
    return loss, correct, len(X), pos, neg


def _describe(part: Part, ranges: bool) -> tuple[set, np.ndarray | None, np.ndarray | None]:
    """The partition's label values (and each column's min and max), for the input checks.

    A hash-based unique, O(n): ``np.unique`` sorts, which took 0.2 s of a 0.8 s fit.
    """
    import pandas as pd

    labels = set(pd.unique(part.y).tolist())
    if not ranges:
        return labels, None, None
    return labels, part.X.min(axis=0), part.X.max(axis=0)


def _describe_combine(a: tuple, b: tuple) -> tuple:
    if a[1] is None:
        return a[0] | b[0], None, None
    return a[0] | b[0], np.minimum(a[1], b[1]), np.maximum(a[2], b[2])


# ---------------------------------------------------------------- driver


@dataclass
class _Problem:
    """What every step needs: where the data is, its labels, and the objective's scaling."""

    steps: Steps
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


def _check(steps: Steps, config: LogRegConfig) -> tuple[list, int, list[str]]:
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


def _train_rows(part: Part, positive, holdout: float, seed: int) -> int:
    return len(_rows(part, positive, holdout, seed)[0])


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


def _solve(steps: Steps, config: LogRegConfig) -> LogRegResult:
    """The checks, the solver and the final metrics, written once for both executions."""
    with steps.span("init"):
        classes, n, notes = _check(steps, config)
    problem = _Problem(steps, config, classes[1], n)
    solve = {"lbfgs": _lbfgs, "newton": _newton, "admm": _admm}[config.solver]
    wb, n_iter, converged, history = solve(problem)
    with steps.span("final"):
        metrics, train_loss = _all_metrics(problem, wb)
    objective = train_loss + problem.penalty(wb)[0]
    return LogRegResult(
        wb[:-1].copy(),
        float(wb[-1]),
        objective,
        n_iter,
        converged,
        classes,
        metrics,
        history,
        notes,
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


def explain(rows: int, features: int, workers: int, config: LogRegConfig) -> list[Step]:
    """One step of ``config.solver`` as the steps :func:`fit` runs (``scaling explain logreg``)."""
    n, d, p = rows, features, workers
    tree = f"workers, tree of depth {tree_depth(p)}"
    if config.solver == "admm":
        x = 8 * p * (d + 1)  # one partition per worker: the x_i of all of them
        steps = [
            Step(
                "map",
                "_admm_local",
                f"each of {p} workers",
                "solve the partition's regularised problem to convergence (local L-BFGS, ~30 "
                "gradient passes)",
                30 * 4 * n * d / p,
                x,
                reads=30 * 2 * 8 * n * d / p,  # X w and X^T r: two passes over the rows
            ),
            Step(
                "combine", "add", tree, "gather the x_i (a sum of disjoint rows)", x / 8, x, "tree"
            ),
            Step(
                "update",
                "_admm_consensus",
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
            "_loss_grad_hess" if newton else "_loss_grad",
            f"each of {p} workers",
            "z = X w (BLAS), loss and residual (one compiled pass), gradient X^T r"
            + (", Hessian X^T S X" if newton else ""),
            4 * n * d / p + (2 * n * d * d / p if newton else 0),
            partial,
            reads=2 * 8 * n * d / p,  # X w, then X^T r (and X^T S X in the same pass)
        ),
        Step(
            "combine",
            "add_each",
            tree,
            "add partial loss, gradient" + (", Hessian" if newton else ""),
            partial / 8 * tree_depth(p),
            partial,
            "tree",
        ),
        Step(
            "update",
            "_newton" if newton else "_lbfgs",
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


def quality(result: LogRegResult) -> dict:
    """What a run record reports about the fit."""
    out = {"objective": result.objective, "n_iter": result.n_iter, "converged": result.converged}
    for split, values in result.metrics.items():
        out.update({f"{split}_{k}": v for k, v in values.items()})
    return out


class LogReg(Job):
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
    fit = staticmethod(fit)
    synthetic = staticmethod(synthetic)
    baseline = staticmethod(baseline)
    explain = staticmethod(explain)
    quality = staticmethod(quality)
    variants: ClassVar[dict[str, dict]] = {
        "lbfgs driver": {},
        "lbfgs allreduce": {"execution": "allreduce"},
        "newton": {"solver": "newton"},
        "admm": {"solver": "admm"},
    }

    def iterations(self, config: LogRegConfig) -> int:
        # L-BFGS may evaluate more than once per iteration (line search): a bar may overrun.
        return config.max_iter

    def parameters(self, features: int, config: LogRegConfig) -> int:
        return features + 1  # the weights and the intercept

    def interview(self, ask) -> list:
        from jobs.gbdt import JOB as GBDT
        from jobs.gbdt import GBDTConfig
        from scaling.present.interview import Answer

        trees = ask.about(GBDT, GBDTConfig())
        a = Answer("Why is logistic regression easier to parallelise than XGBoost?")
        a.say(
            "Its loss is a sum over the rows, and so is the gradient: each worker computes its "
            f"rows' share ({ask.step(a, 'map', 'flops')} for the busiest) and sends "
            f"{ask.step(a, 'map', 'sends')}, the gradient and the loss, whatever its rows. "
            "One addition of those per step, in a tree or an all-reduce, gives "
            "exactly the single-machine gradient, and the optimiser (L-BFGS) runs on it "
            "unchanged: one synchronisation per step, the same iterates, balanced work."
        )
        a.say(
            "Boosting is sequential twice: tree after tree, and inside a tree level after "
            "level, as no worker can split a node before every worker's gradient histograms "
            "for it are summed. At the same shape data-parallel XGBoost all-reduces "
            f"{trees.step(a, 'combine', 'sends')} per tree, in "
            f"{trees.step(a, 'combine', 'repeats')} rounds (a level each), against "
            f"{ask.step(a, 'combine', 'sends')} once per logistic-regression step: its "
            "messages are sized by nodes x features x bins, and the work per node shrinks "
            "down the tree while the synchronisations do not, so stragglers and latency "
            "cost it more."
        )
        follow = Answer("Follow-up: when would you use Newton or ADMM instead of L-BFGS?")
        follow.say(
            "Newton sends the Hessian too, "
            f"{ask.step(follow, 'map', 'sends', variant='newton')} per worker against "
            f"{ask.step(follow, 'map', 'sends')}, and its map does "
            f"{ask.step(follow, 'map', 'flops', variant='newton')} against "
            f"{ask.step(follow, 'map', 'flops')}, but it converges in a handful of steps: it "
            "wins when d is small and each engine call costs much (few, heavy synchronous "
            "steps). ADMM (Boyd et al., 2011) has each worker solve its own rows' problem to "
            f"convergence ({ask.step(follow, 'map', 'flops', variant='admm')} a step) and "
            "exchange only its solution: few rounds of communication, for networks where a "
            "round is expensive, but slow to reach high accuracy."
        )
        return [a, follow]

    def arrays(self, result: LogRegResult) -> dict[str, np.ndarray]:
        return {"coef": np.r_[result.coef, result.intercept]}  # the intercept last


JOB = LogReg()
