"""The strategy interface, and what every strategy shares: the problem, the result, the clock."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from jobs.sgd.config import SGDConfig
from scaling.engines import Dataset, Engine
from scaling.job import OnIteration
from scaling.model.steps import Step
from scaling.run.checkpoint import Checkpoints


@dataclass(kw_only=True)
class Problem:
    """What a strategy trains: where the rows are, the config, the sorted classes, and where
    the run keeps its checkpoints (None: none)."""

    engine: Engine
    ds: Dataset
    config: SGDConfig
    classes: np.ndarray
    checkpoints: Checkpoints | None = None


@dataclass(kw_only=True)
class SGDResult:
    """Final parameters, held-out accuracy history, time and samples to the target."""

    params: np.ndarray
    classes: list
    steps: int
    accuracy: float
    history: list[dict] = field(default_factory=list)
    target_step: int | None = None
    target_seconds: float | None = None
    train_seconds: float = 0.0
    staleness: np.ndarray | None = None
    parameters: int = 0
    batch_size: int = 0


class Strategy(ABC):
    """One way to train data-parallel: its training loop, what it sends, what it holds.

    A strategy module defines a subclass and ``STRATEGY``, its instance, registered by name in
    :data:`jobs.sgd.config.STRATEGIES`. Its training records one trace span ``step`` per step.
    """

    name: ClassVar[str]

    @abstractmethod
    def train(self, problem: Problem, on_iteration: OnIteration) -> SGDResult:
        """Train to ``config.max_steps`` steps, or to the target accuracy."""

    @abstractmethod
    def step_bytes(self, config: SGDConfig, size: int, workers: int) -> int:
        """Bytes all workers together send and receive per step, by the algorithm, for a
        model of ``size`` bytes (what is expected; runs measure what is sent)."""

    @abstractmethod
    def explain(self, rows: int, features: int, workers: int, config: SGDConfig) -> list[Step]:
        """One step as the named steps :meth:`train` runs."""

    def execution(self, config: SGDConfig) -> str:
        """How a step runs (:meth:`scaling.job.Job.execution`): by default the workers hold
        the loop and all-reduce among themselves."""
        return "allreduce"

    def copies(self, config: SGDConfig) -> int:
        """Model-sized buffers a worker holds: parameters, gradients, optimiser state."""
        return 2 + (2 if config.optimizer == "adam" else int(config.momentum > 0))


class Clock:
    """Training time (evaluations excluded), held-out accuracy history, and the target."""

    def __init__(self, config: SGDConfig, every: int | None = None) -> None:
        self.config = config
        self.every = every or config.eval_every
        self.history: list[dict] = []
        self.target: tuple[int, float] | None = None
        self.accuracy = 0.0  # the latest evaluation's
        self.excluded = 0.0
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0 - self.excluded

    def due(self, step: int) -> bool:
        return (step + 1) % self.every == 0 or step + 1 == self.config.max_steps

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the time of the block (an evaluation) out of the training time."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - t0

    def evaluated(self, step: int, accuracy: float, seconds: float | None = None) -> bool:
        """Record an evaluation; whether training should stop (the target is reached)."""
        seconds = self.elapsed() if seconds is None else seconds
        self.accuracy = accuracy
        self.history.append({"step": step + 1, "seconds": seconds, "accuracy": accuracy})
        target = self.config.target_accuracy
        if target and self.target is None and accuracy >= target:
            self.target = (step + 1, seconds)
        return self.target is not None

    def state(self) -> dict:
        """What a checkpoint keeps of the clock: the evaluations and the time so far."""
        return {"history": self.history, "target": self.target, "accuracy": self.accuracy,
                "elapsed": self.elapsed()}  # fmt: skip

    def restore(self, state: dict) -> None:
        """Go on from a checkpoint's :meth:`state`: its evaluations, its time counted."""
        self.history, self.accuracy = list(state["history"]), state["accuracy"]
        self.target = None if state["target"] is None else tuple(state["target"])
        self.t0, self.excluded = time.perf_counter() - state["elapsed"], 0.0

    def result(self, params: np.ndarray, classes: np.ndarray, steps: int) -> SGDResult:
        target_step, target_seconds = self.target or (None, None)
        return SGDResult(
            params=params,
            classes=classes.tolist(),
            steps=steps,
            accuracy=self.accuracy,
            history=self.history,
            target_step=target_step,
            target_seconds=target_seconds,
            train_seconds=self.elapsed(),
        )
