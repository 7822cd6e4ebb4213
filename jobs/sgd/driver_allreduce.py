"""Driver all-reduce: one map-reduce per step: the gradient summed over the workers, then the
optimiser step.

Per step: map (:func:`_batch_grad`, each worker's summed gradient over its rows of the global
batch) -> combine (:func:`~scaling.execution.add_each`, a sum) -> update
(:meth:`~jobs.sgd.model.Replica.step`). The loop (:func:`_train`) is written once for both
executions (``--execution``, :mod:`scaling.execution`): ``driver``, the MapReduce style, where
the sum is an engine call, the step runs on the driver and the parameters go back to the
workers with the next step's rows (two driver round trips' worth of latency per step); or
``allreduce``, where every worker runs the loop in one gang, picks the batch's rows itself,
all-reduces the gradient with the others and takes the same step (synchronous SGD without
ring-allreduce's overlap of communication with backward).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from jobs.sgd.batches import GlobalBatches
from jobs.sgd.config import ITERATION, SGDConfig, count_parameters
from jobs.sgd.model import Replica, pin_torch
from jobs.sgd.strategy import Clock, Problem, SGDResult, Strategy
from scaling.collectives.allreduce import allreduce_bytes
from scaling.data import Part, held_out
from scaling.execution import Loop, add_each, execute
from scaling.job import OnIteration
from scaling.model.steps import Step, for_execution, tree_depth

_REPLICAS = threading.local()
"""A worker's model replica per (shape, config): built once, reused by every step's map. One
per thread: the local engine's gang members are threads of one process."""


def _worker_replica(features: int, classes: np.ndarray, config: SGDConfig, dtype: str) -> Replica:
    key = (features, len(classes), config.model, config.widths, dtype)
    if getattr(_REPLICAS, "key", None) != key:  # one model at a time per worker
        pin_torch()
        _REPLICAS.key, _REPLICAS.replica = key, Replica(features, len(classes), config, dtype)
    return _REPLICAS.replica


def _batch_grad(
    part: Part, params: np.ndarray, rows: np.ndarray, classes: np.ndarray, config: SGDConfig
) -> tuple[np.ndarray, float, int]:
    """Map step: the summed loss's gradient over this partition's rows of the global batch.

    Notes
    -----
    Forward and backward over ~B / p rows: O(B P / p) flops for P parameters; sends P + 2
    numbers back whatever the batch.
    """
    replica = _worker_replica(part.X.shape[1], classes, config, str(part.X.dtype))
    replica.set(params)
    mine = rows[(rows >= part.start) & (rows < part.stop)] - part.start
    X = torch.from_numpy(part.X[mine])
    y = torch.from_numpy(np.searchsorted(classes, part.y[mine]).astype(np.int64))
    loss = replica.grad_sum(X, y)
    return replica.grad.numpy().copy(), loss, len(mine)


def _held_correct(part: Part, params: np.ndarray, classes: np.ndarray, config: SGDConfig) -> tuple:
    """Map step of an evaluation: correct predictions and count on the held-out rows."""
    replica = _worker_replica(part.X.shape[1], classes, config, str(part.X.dtype))
    replica.set(params)
    held = held_out(config.seed, part.start, part.stop, config.holdout)
    X = torch.from_numpy(part.X[held])
    y = torch.from_numpy(np.searchsorted(classes, part.y[held]).astype(np.int64))
    return replica.correct(X, y), len(X)


def _train(steps: Loop, dtype: str, classes: np.ndarray, config: SGDConfig) -> SGDResult:
    """The training loop, written once for both executions."""
    replica = Replica(steps.features, len(classes), config, dtype)
    batches = GlobalBatches(steps.rows, config.holdout, config.seed, config.batch_size)
    clock, step = Clock(config), 0
    for step in range(config.max_steps):
        with steps.iteration():
            grad, _, count = steps.map_reduce(
                _batch_grad, add_each, replica.flat.numpy(), batches(step), classes, config
            )
            replica.grad.numpy()[:] = grad
            replica.step(1.0 / count)
        steps.progress(step, float(step + 1))
        if clock.due(step):
            with clock.paused(), steps.span("eval"):
                hits, total = steps.map_reduce(
                    _held_correct, add_each, replica.flat.numpy(), classes, config
                )
            if clock.evaluated(step, hits / total):
                break
    return clock.result(replica.flat.numpy().copy(), classes, step + 1)


def _params(result: SGDResult) -> np.ndarray:
    """What every replica must end with (its timings are its own)."""
    return result.params


class DriverAllreduce(Strategy):
    name = "driver-allreduce"

    def train(self, problem: Problem, on_iteration: OnIteration) -> SGDResult:
        engine, ds, config = problem.engine, problem.ds, problem.config
        return execute(
            engine,
            ds,
            config.execution,
            _train,
            ds.dtype,
            problem.classes,
            config,
            iteration=ITERATION,
            on_iteration=on_iteration,
            state=_params,
        )

    def step_bytes(self, config: SGDConfig, size: int, workers: int) -> int:
        if config.execution == "allreduce":  # each sends and receives the gradient, loss, count
            return 2 * workers * allreduce_bytes(size + 16, workers)  # float64 (the default)
        # parameters + batch rows down to each worker, its gradient up
        return workers * (size + 8 * config.batch_size) + workers * size

    def execution(self, config: SGDConfig) -> str:
        return config.execution

    def explain(self, rows: int, features: int, workers: int, config: SGDConfig) -> list[Step]:
        P, B, p = count_parameters(features, 2, config), config.batch_size, workers
        size = 8 * P
        steps = [
            Step(
                kind="map",
                function="driver_allreduce._batch_grad",
                where=f"each of {p} workers",
                does=f"forward and backward over ~{B // p} rows of the batch",
                flops=6 * B * P / p,
                sends=size,
            ),
            Step(
                kind="combine",
                function="scaling.execution.add_each",
                where=f"workers, tree of depth {tree_depth(p)}",
                does="add the gradients",
                flops=P * tree_depth(p),
                sends=size,
                pattern="tree",
            ),
            Step(
                kind="update",
                function="model.Replica.step",
                where="driver",
                does="optimiser step; ship parameters and the next batch's rows",
                flops=4 * P,
                sends=size + 8 * B,
                pattern="scatter",
            ),
        ]
        return for_execution(steps, config.execution, p)


STRATEGY = DriverAllreduce()
