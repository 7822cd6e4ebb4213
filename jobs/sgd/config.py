"""SGD's options, its strategies by name, and the sizes they follow from (parameters, bytes per
step)."""

from __future__ import annotations

import importlib
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from scaling.errors import UsageError, check_choice, check_count
from scaling.execution import EXECUTIONS

if TYPE_CHECKING:
    from jobs.sgd.strategy import Strategy


ITERATION = "step"
"""Trace span of one step: one global batch of training rows."""


STRATEGIES = {
    "driver-allreduce": "jobs.sgd.driver_allreduce",
    "ring-allreduce": "jobs.sgd.ring_allreduce",
    "local-sgd": "jobs.sgd.local_sgd",
    "parameter-server": "jobs.sgd.parameter_server",
}
"""Strategy name -> its module, which defines ``STRATEGY``."""


MODELS = ("mlp", "softmax")


OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True, kw_only=True)
class SGDConfig:
    """Validated settings of a data-parallel SGD run.

    ``batch_size`` is the global batch (all workers together). ``max_steps`` counts global
    batches. ``target_accuracy`` (0: none): stop at the first evaluation, every ``eval_every``
    steps, whose held-out accuracy reaches it (the parameter server, being asynchronous, trains
    to ``max_steps`` and finds the first snapshot that reached it afterwards). ``sync_every``:
    local-SGD's H (0: average once, at the end). ``bucket_mb``: gradient bucket size of
    ring-allreduce (DDP's ``bucket_cap_mb``). ``timeout``: seconds a collective may wait for
    a peer before the run fails. ``execution``: how driver-allreduce runs its loop, on the
    driver (``driver``) or on every worker in one gang (``allreduce``; :mod:`scaling.execution`).
    """

    strategy: str = "ring-allreduce"
    model: str = "mlp"
    hidden: str = "64,64"
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 512
    max_steps: int = 200
    target_accuracy: float = 0.0
    eval_every: int = 10
    sync_every: int = 8
    bucket_mb: float = 25.0
    holdout: float = 0.1
    timeout: float = 120.0
    seed: int = 0
    execution: str = "driver"

    def __post_init__(self) -> None:
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("model", self.model, MODELS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("execution", self.execution, EXECUTIONS)
        if self.execution == "allreduce" and self.strategy != "driver-allreduce":
            raise UsageError(
                "--execution allreduce is for --strategy driver-allreduce; the other "
                f"strategies already train inside a gang, got {self.strategy!r}"
            )
        self.widths  # noqa: B018 - validates hidden
        for name in ("batch_size", "max_steps", "eval_every"):
            check_count(name, getattr(self, name))
        check_count("sync_every", self.sync_every, minimum=0)
        if not self.lr > 0 or self.momentum < 0 or self.weight_decay < 0:
            raise UsageError("lr must be > 0, momentum and weight_decay >= 0")
        if not 0 <= self.target_accuracy <= 1:
            raise UsageError(f"target_accuracy must be in [0, 1], got {self.target_accuracy}")
        if not 0 < self.holdout < 1:
            raise UsageError("holdout must be in (0, 1): accuracy is held-out accuracy")
        if not self.bucket_mb > 0 or not self.timeout > 0:
            raise UsageError("bucket_mb and timeout must be > 0")

    @property
    def widths(self) -> tuple[int, ...]:
        """The MLP's hidden widths (none for softmax regression)."""
        if self.model == "softmax":
            return ()
        try:
            widths = tuple(int(w) for w in self.hidden.split(",") if w.strip())
        except ValueError:
            widths = ()
        if not widths or min(widths) < 1:
            raise UsageError(
                f"hidden must be positive widths like 64 or 256,256, got {self.hidden!r}"
            )
        return widths


def count_parameters(features: int, classes: int, config: SGDConfig) -> int:
    """Weights and biases of the model: sum of (fan_in + 1) x fan_out over its layers."""
    sizes = (features, *config.widths, classes)
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name`` (imports it, and torch)."""
    return importlib.import_module(STRATEGIES[name]).STRATEGY


def step_bytes(config: SGDConfig, features: int, classes: int, dtype: str, workers: int) -> int:
    """Bytes all workers together send and receive per step, by the strategy's algorithm."""
    size = count_parameters(features, classes, config) * np.dtype(dtype).itemsize
    return get_strategy(config.strategy).step_bytes(config, size, workers)
