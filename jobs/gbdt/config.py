"""Boosted trees' options and result, the libraries' constants and parameters (light: XGBoost
and LightGBM are imported by :mod:`jobs.gbdt.train`, only when a run needs them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING

import numpy as np

from scaling.errors import UsageError, check_choice, check_count

if TYPE_CHECKING:
    pass


ITERATION = "round"
"""Trace span of one boosting round: one tree."""


LIBRARIES = ("xgboost", "lightgbm")


MODES = ("data", "feature", "voting")


HIST_ENTRY = 16
"""Bytes of one histogram bin: a (gradient, hessian) pair of float64, in both libraries."""


# What the libraries' records weigh on the wire, as the kernel's socket counters show (2 and 3
# workers, XGBoost 3.x, LightGBM 4.x): LightGBM's SplitInfo::Size with max_cat_threshold = 32
# categories; its voting's LightSplitInfo (feature, gain, count); XGBoost's split entry as its
# column split gathers them.
LIGHTGBM_SPLIT = 222


LIGHTGBM_VOTE = 16


XGBOOST_SPLIT = 270


XGBOOST_COL_SPLIT_UNTIL = (3, 4)
"""XGBoost 3.4 removed column-split training: feature-parallel needs an older one."""


def _xgboost_version() -> str:
    """The installed XGBoost's version, from its package metadata (importing it takes 2 s)."""
    for name in ("xgboost-cpu", "xgboost"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "0"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".")[:2] if x.isdigit())


@dataclass(frozen=True, kw_only=True)
class GBDTConfig:
    """Validated settings of a boosted-trees run.

    ``max_depth`` bounds XGBoost's depth-wise trees; ``num_leaves`` LightGBM's leaf-wise ones.
    ``max_bin``: histogram bins per feature. ``top_k``: features each worker votes for
    (voting). ``timeout``: seconds the gang, and any collective inside it, may wait for a
    member before the run fails.
    """

    library: str = "xgboost"
    mode: str = "data"
    rounds: int = 50
    max_depth: int = 6
    num_leaves: int = 31
    max_bin: int = 255
    learning_rate: float = 0.1
    top_k: int = 20
    holdout: float = 0.2
    timeout: float = 300.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("library", self.library, LIBRARIES)
        check_choice("mode", self.mode, MODES)
        if self.library == "xgboost" and self.mode == "voting":
            raise UsageError(
                "XGBoost has no voting-parallel mode; use --library lightgbm --mode voting, "
                "or --mode data|feature with XGBoost"
            )
        if (self.library, self.mode) == ("xgboost", "feature") and (
            _version_tuple(_xgboost_version()) >= XGBOOST_COL_SPLIT_UNTIL
        ):
            raise UsageError(
                f"XGBoost {_xgboost_version()} has no column-split training "
                "(removed in 3.4), which feature-parallel needs; install an older one: "
                "pip install 'xgboost-cpu<3.4'"
            )
        for name in ("rounds", "max_depth", "top_k"):
            check_count(name, getattr(self, name))
        for name in ("num_leaves", "max_bin"):
            check_count(name, getattr(self, name), minimum=2)
        if not self.learning_rate > 0 or not self.timeout > 0:
            raise UsageError("learning_rate and timeout must be > 0")
        if not 0 < self.holdout < 1:
            raise UsageError("holdout must be in (0, 1): quality is measured on held-out rows")


@dataclass(kw_only=True)
class GBDTResult:
    """Held-out predictions (probabilities, by global row), their quality, and the model.

    ``train_seconds``: the slowest member's time from its first step of training (the
    replica in feature mode, else the library's matrix) to its last tree; ``gang_seconds``:
    the whole gang call, held-out scoring included.
    """

    predictions: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    logloss: float
    auc: float
    rounds: int
    train_seconds: float
    gang_seconds: float
    model: bytes = field(repr=False, default=b"")
    replica_bytes: int = 0


def xgboost_params(config: GBDTConfig) -> dict:
    """XGBoost ``hist`` parameters of ``config``, one thread."""
    return {
        "tree_method": "hist",
        "objective": "binary:logistic",
        "max_depth": config.max_depth,
        "max_bin": config.max_bin,
        "eta": config.learning_rate,
        "nthread": 1,
        "seed": config.seed,
    }


def lightgbm_params(config: GBDTConfig) -> dict:
    """LightGBM parameters of ``config`` for one machine, one thread."""
    return {
        "objective": "binary",
        "num_leaves": config.num_leaves,
        "max_bin": config.max_bin,
        "learning_rate": config.learning_rate,
        "top_k": config.top_k,
        "num_threads": 1,
        "seed": config.seed,
        "deterministic": True,
        "verbose": -1,
    }


def memory_needed(rows: int, features: int, dtype: str, workers: int) -> int:
    """Bytes a worker needs for its n F / p values (its rows, or in feature mode all rows of
    its columns): the cached partitions, the training copy and the library's matrix (~8 bytes
    per value as XGBoost's CSR entries, 1 per binned value)."""
    values = rows * features / workers
    return int(values * (2 * np.dtype(dtype).itemsize + 9))
