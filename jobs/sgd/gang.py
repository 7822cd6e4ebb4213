"""What the three gang strategies share: one replica per worker in one gang call, a gloo group,
held-out evaluation, and each step measured by the worker itself."""

from __future__ import annotations

import io
from abc import abstractmethod
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from jobs.sgd.batches import Shard
from jobs.sgd.config import ITERATION, SGDConfig, count_parameters
from jobs.sgd.model import Replica, build_model, pin_torch
from jobs.sgd.strategy import Clock, Problem, SGDResult, Strategy
from scaling.collectives import run_gang
from scaling.collectives.torch import Group, TorchBackend
from scaling.data import Part
from scaling.engines.worker import GangContext
from scaling.job import OnIteration
from scaling.measure.trace import StepLog
from scaling.run.checkpoint import Checkpoints, note_resumed


@dataclass(frozen=True, kw_only=True)
class GangBrief:
    """What every gang member gets: the config, data shape, classes and initial parameters,
    and where the run's checkpoints are (None: a strategy that cannot go on from one)."""

    config: SGDConfig
    rows: int
    classes: np.ndarray
    init: np.ndarray
    checkpoints: Checkpoints | None = None

    def latest(self) -> tuple[int, dict] | None:
        """The latest checkpoint: the steps it had done and the state it kept."""
        latest = self.checkpoints.latest() if self.checkpoints else None
        return None if latest is None else (latest[0], load(latest[1]))

    def resume(self, rank: int, replica: Replica, clock: Clock) -> int:
        """Load the latest checkpoint into ``replica`` (the parameters, and this rank's
        optimiser state) and ``clock``; the steps it had done (0: none, start afresh)."""
        latest = self.latest()
        if latest is None:
            return 0
        done, state = latest
        replica.set(state["params"])
        optimizers = state["optimizers"]
        replica.optimizer.load_state_dict(load(optimizers[rank if len(optimizers) > 1 else 0]))
        clock.restore(state["clock"])
        return done

    def checkpoint(
        self, group: Group, done: int, replica: Replica, clock: Clock, each: bool = False
    ) -> None:
        """After ``done`` steps, every ``checkpoints.every``: rank 0 keeps the parameters
        (the same on every replica at this step), the optimiser's state (``each``: every
        replica's own, gathered through the group's store; else rank 0's, the replicas
        having taken the same steps) and its clock."""
        every = self.checkpoints.every if self.checkpoints else 0
        if not (every and done % every == 0 and done < self.config.max_steps):
            return
        optimizer = dump(replica.optimizer.state_dict())
        if each:
            group.store.set(f"checkpoint-{done}-{group.rank}", optimizer)
        if group.rank != 0:
            return
        if each:
            optimizers = [group.store.get(f"checkpoint-{done}-{r}") for r in range(group.world)]
        else:
            optimizers = [optimizer]
        state = {"params": replica.flat.clone(), "optimizers": optimizers, "clock": clock.state()}
        self.checkpoints.save(done, dump(state))


def dump(obj) -> bytes:
    """``obj`` (tensors, optimiser states, lists) as a checkpoint's bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def load(blob: bytes):
    """What :func:`dump` wrote."""
    return torch.load(io.BytesIO(blob), weights_only=False)


class GangStrategy(Strategy):
    """A strategy whose replicas train inside one gang call, the driver out of the loop.

    Subclasses implement :meth:`member`, the training loop of one replica. Each step is timed
    inside the workers (wall; compute; communication, the time spent waiting in collectives)
    and the bytes come from the kernel's counters of each member's sockets.
    """

    split = "compute and waits on the collectives, timed inside each worker"
    resumable = False
    """Its members go on from the run's checkpoints (:meth:`GangBrief.resume`)."""

    @abstractmethod
    def member(
        self, group: Group, shard: Shard, replica: Replica, job: GangBrief, log: StepLog
    ) -> dict:
        """Train one replica, timing each step in ``log`` (open it when training starts,
        close it when it ends); return :func:`outcome` (rank 0: and what it alone has)."""

    def train(self, problem: Problem, on_iteration: OnIteration) -> SGDResult:
        engine, ds, config = problem.engine, problem.ds, problem.config
        init = nn.utils.parameters_to_vector(
            build_model(ds.features, len(problem.classes), config, ds.dtype).parameters()
        )
        checkpoints = problem.checkpoints if self.resumable else None
        job = GangBrief(
            config=config,
            rows=ds.rows,
            classes=problem.classes,
            init=init.detach().numpy(),
            checkpoints=checkpoints,
        )
        failed_before = len(engine.trace.failures)
        with engine.trace.span("train"):
            outs = run_gang(engine, ds, TorchBackend(), _member, self, job)
        done = outs[0]["resumed_from"]  # steps the last start of the gang did not take
        if done:
            note_resumed(engine.trace.failures, failed_before, done)
        size = count_parameters(ds.features, len(problem.classes), config)
        expected = self.step_bytes(config, size * np.dtype(ds.dtype).itemsize, engine.workers)
        spans = engine.trace.add_measured(ITERATION, [o["log"] for o in outs], expected, self.split)
        for i in range(done, done + len(spans)):
            on_iteration(i, float(i + 1))
        first = outs[0]
        target_step, target_seconds = first["target"] or (None, None)
        return SGDResult(
            params=first["params"],
            classes=problem.classes.tolist(),
            steps=first["steps"],
            accuracy=first["accuracy"],
            history=first["history"],
            target_step=target_step,
            target_seconds=target_seconds,
            train_seconds=first["seconds"],
            staleness=first.get("staleness"),
        )


def _member(
    ctx: GangContext, parts: list[Part], backend: TorchBackend, started, strategy, job: GangBrief
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


def outcome(
    clock: Clock, log: StepLog, steps: int, seconds: float | None = None, resumed: int = 0
) -> dict:
    """What a gang member returns: its step log and, from rank 0, the evaluations
    (``resumed``: the steps its checkpoint had done)."""
    return {
        "resumed_from": resumed,
        "log": log.result(),
        "history": clock.history,
        "target": clock.target,
        "steps": steps,
        "accuracy": clock.accuracy,
        "seconds": clock.elapsed() if seconds is None else seconds,
    }
