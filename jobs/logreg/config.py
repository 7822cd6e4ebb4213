"""Logistic regression's options and result."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scaling.errors import UsageError, check_choice, check_count
from scaling.execution import EXECUTIONS

ITERATION = "step"
"""Trace span of one map-reduce step (one L-BFGS evaluation, Newton or ADMM iteration)."""


SOLVERS = ("lbfgs", "newton", "admm")


PENALTIES = ("l2", "l1")


AUC_BINS = 1 << 14


@dataclass(frozen=True, kw_only=True)
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


@dataclass(kw_only=True)
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
