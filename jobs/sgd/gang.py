"""What the three gang strategies share: one replica per worker in one gang call, a gloo group,
held-out evaluation, and each step measured by the worker itself."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import numpy as np
from torch import nn

from jobs.sgd import ITERATION, SGDConfig, count_parameters
from jobs.sgd.batches import Shard
from jobs.sgd.model import Replica, build_model, pin_torch
from jobs.sgd.strategy import Clock, Problem, SGDResult, Strategy
from scaling.collectives import run_gang
from scaling.collectives.torch import Group, TorchBackend
from scaling.data import Part
from scaling.engines.worker import GangContext
from scaling.job import OnIteration
from scaling.trace import StepLog


@dataclass(frozen=True)
class GangJob:
    """What every gang member gets: the config, data shape, classes and initial parameters."""

    config: SGDConfig
    rows: int
    classes: np.ndarray
    init: np.ndarray


class GangStrategy(Strategy):
    """A strategy whose replicas train inside one gang call, the driver out of the loop.

    Subclasses implement :meth:`member`, the training loop of one replica. Each step is timed
    inside the workers (wall; compute; communication, the time spent waiting in collectives)
    and the bytes come from the kernel's counters of each member's sockets.
    """

    split = "compute and waits on the collectives, timed inside each worker"

    @abstractmethod
    def member(
        self, group: Group, shard: Shard, replica: Replica, job: GangJob, log: StepLog
    ) -> dict:
        """Train one replica, timing each step in ``log`` (open it when training starts,
        close it when it ends); return :func:`outcome` (rank 0: and what it alone has)."""

    def train(self, problem: Problem, on_iteration: OnIteration) -> SGDResult:
        engine, ds, config = problem.engine, problem.ds, problem.config
        init = nn.utils.parameters_to_vector(
            build_model(ds.features, len(problem.classes), config, ds.dtype).parameters()
        )
        job = GangJob(config, ds.rows, problem.classes, init.detach().numpy())
        with engine.trace.span("train"):
            outs = run_gang(engine, ds, TorchBackend(), _member, self, job)
        size = count_parameters(ds.features, len(problem.classes), config)
        expected = self.step_bytes(config, size * np.dtype(ds.dtype).itemsize, engine.workers)
        spans = engine.trace.add_measured(ITERATION, [o["log"] for o in outs], expected, self.split)
        for i in range(len(spans)):
            on_iteration(i, float(i + 1))
        first = outs[0]
        return SGDResult(
            first["params"],
            problem.classes.tolist(),
            first["steps"],
            first["accuracy"],
            first["history"],
            *(first["target"] or (None, None)),
            train_seconds=first["seconds"],
            staleness=first.get("staleness"),
        )


def _member(
    ctx: GangContext, parts: list[Part], backend: TorchBackend, started, strategy, job: GangJob
) -> dict:
    """One replica of a gang strategy; rank 0 also returns the final parameters."""
    config = job.config
    pin_torch()
    log = StepLog(ctx.rank)  # before joining: the sockets open now are not the collective's
    with backend.member(ctx, started, config.timeout) as group:
        shard = Shard(parts, job.classes, config.holdout, config.seed)
        dtype = str(shard.X.dtype).split(".")[-1]
        replica = Replica(shard.X.shape[1], len(job.classes), config, dtype)
        replica.set(job.init)
        out = strategy.member(group, shard, replica, job, log)
    if ctx.rank == 0:
        out["params"] = replica.flat.numpy().copy()
    return out


def evaluate(clock: Clock, step: int, group: Group, shard: Shard, replica: Replica) -> bool:
    """Score the (common) model on every member's held-out rows; whether the target is met."""
    with clock.paused():
        hits, total = group.sum(list(shard.held_correct(replica)))
    return clock.evaluated(step, hits / total)


def outcome(clock: Clock, log: StepLog, steps: int, seconds: float | None = None) -> dict:
    """What a gang member returns: its step log and, from rank 0, the evaluations."""
    return {
        "log": log.result(),
        "history": clock.history,
        "target": clock.target,
        "steps": steps,
        "accuracy": clock.accuracy,
        "seconds": clock.elapsed() if seconds is None else seconds,
    }
