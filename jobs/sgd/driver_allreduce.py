"""Driver all-reduce: one map-reduce per step, the optimiser on the driver (the MapReduce style).

Per step: map (:func:`_batch_grad`, each worker's summed gradient over its rows of the global
batch) -> combine (:func:`~scaling.executor.add_each`, a sum, on the workers) -> update on the
driver (:meth:`~jobs.sgd.model.Replica.step`), which ships the parameters back with the next
step's rows. Two driver round trips' worth of latency per step.
"""

from __future__ import annotations

import numpy as np
import torch

from jobs.sgd import ITERATION, SGDConfig, count_parameters
from jobs.sgd.batches import GlobalBatches
from jobs.sgd.model import Replica, pin_torch
from jobs.sgd.strategy import Clock, Problem, SGDResult, Strategy
from scaling.data import Part, held_out
from scaling.executor import add_each
from scaling.explain import Step, tree_depth
from scaling.job import OnIteration

_REPLICAS: dict[tuple, Replica] = {}
"""A worker's model replica per (shape, config): built once, reused by every step's map."""


def _worker_replica(features: int, classes: np.ndarray, config: SGDConfig, dtype: str) -> Replica:
    key = (features, len(classes), config.model, config.widths, dtype)
    if key not in _REPLICAS:
        pin_torch()
        _REPLICAS.clear()  # one model at a time per worker
        _REPLICAS[key] = Replica(features, len(classes), config, dtype)
    return _REPLICAS[key]


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


class DriverAllreduce(Strategy):
    name = "driver-allreduce"

    def train(self, problem: Problem, on_iteration: OnIteration) -> SGDResult:
        engine, ds, config = problem.engine, problem.ds, problem.config
        replica = Replica(ds.features, len(problem.classes), config, ds.dtype)
        batches = GlobalBatches(ds.rows, config.holdout, config.seed, config.batch_size)
        clock, step = Clock(config), 0
        for step in range(config.max_steps):
            with engine.trace.span(ITERATION):
                rows = batches(step)
                grad, _, count = engine.map_reduce(
                    ds, _batch_grad, add_each, replica.flat.numpy(), rows, problem.classes, config
                )
                replica.grad.numpy()[:] = grad
                replica.step(1.0 / count)
            on_iteration(step, float(step + 1))
            if clock.due(step):
                with clock.paused(), engine.trace.span("eval"):
                    hits, total = engine.map_reduce(
                        ds, _held_correct, add_each, replica.flat.numpy(), problem.classes, config
                    )
                if clock.evaluated(step, hits / total):
                    break
        return clock.result(replica.flat.numpy().copy(), problem, step + 1)

    def step_bytes(self, config: SGDConfig, size: int, workers: int) -> int:
        # parameters + batch rows down to each worker, its gradient up
        return workers * (size + 8 * config.batch_size) + workers * size

    def explain(self, rows: int, features: int, workers: int, config: SGDConfig) -> list[Step]:
        P, B, p = count_parameters(features, 2, config), config.batch_size, workers
        size = 8 * P
        return [
            Step(
                "map",
                "driver_allreduce._batch_grad",
                f"each of {p} workers",
                f"forward and backward over ~{B // p} rows of the batch",
                6 * B * P / p,  # forward 2 flops per weight per row, backward 4
                size,
            ),
            Step(
                "combine",
                "scaling.executor.add_each",
                f"workers, tree of depth {tree_depth(p)}",
                "add the gradients",
                P * tree_depth(p),
                size,
            ),
            Step(
                "update",
                "model.Replica.step",
                "driver",
                "optimiser step; ship parameters and the next batch's rows",
                4 * P,
                size + 8 * B,
            ),
        ]


STRATEGY = DriverAllreduce()
