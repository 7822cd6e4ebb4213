"""k-means' options and result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaling.errors import UsageError, check_choice, check_count
from scaling.execution import EXECUTIONS

ITERATION = "lloyd"
"""Name of the trace span of one iteration (what run records time)."""


INITS = ("k-means||", "random")


@dataclass(frozen=True, eq=False, kw_only=True)  # eq=False: init may be an array
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
            # absolute here, on the driver: the workers that read it run in other directories
            object.__setattr__(self, "init", str(Path(self.init).absolute()))

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


@dataclass(kw_only=True)
class KMeansResult:
    """Fitted centres (float64), the inertia at those centres, and what the fit did."""

    centers: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    shifts: list[float]
