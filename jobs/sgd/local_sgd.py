"""Local SGD: H local steps on a replica's own rows, then parameter averaging (one all-reduce).

H = ``sync_every``. H = 1 is synchronous SGD (for SGD with or without momentum); ``sync_every=0``
averages once, at the end (one-shot averaging, Zinkevich et al., "Parallelized Stochastic
Gradient Descent", 2010). H times less communication than synchronous SGD, at the price of
replicas drifting apart between averages.
"""

from __future__ import annotations

import math
import time

from jobs.sgd.batches import LocalBatches, Shard, local_share
from jobs.sgd.config import SGDConfig, count_parameters
from jobs.sgd.gang import GangBrief, GangStrategy, evaluate, outcome
from jobs.sgd.model import Replica
from jobs.sgd.strategy import Clock
from scaling.collectives.torch import Group
from scaling.measure.trace import StepLog
from scaling.model.steps import Step


class LocalSGD(GangStrategy):
    name = "local-sgd"
    resumable = True  # from an average: the parameters agree there, each its own optimiser

    def member(
        self, group: Group, shard: Shard, replica: Replica, job: GangBrief, log: StepLog
    ) -> dict:
        """Per step O(B P / p) flops; every H steps each replica sends 2 (p - 1) / p x P
        numbers."""
        config = job.config
        size = local_share(config.batch_size, group.world, group.rank)
        batches = LocalBatches(shard, size, config.seed, group.rank)
        every = config.sync_every or config.max_steps
        # Evaluate at averaging points only: that is when there is one model to score.
        clock = Clock(config, every=math.ceil(config.eval_every / every) * every)
        step = start = job.resume(group.rank, replica, clock)
        log.open()
        for step in range(start, config.max_steps):
            t0 = time.perf_counter()
            X, y = shard.batch(batches(step))
            t1 = time.perf_counter()
            replica.grad_sum(X, y)
            replica.step(1.0 / max(len(X), 1))
            t2 = time.perf_counter()
            averaged = (step + 1) % every == 0 or step + 1 == config.max_steps
            if averaged:
                work = group.allreduce(replica.flat)
                if work:
                    group.wait(work)
                    replica.flat.div_(group.world)
            t3 = time.perf_counter()
            log.add(t3 - t0, t2 - t1, t3 - t2)
            if clock.due(step) and evaluate(clock, step, group, shard, replica):
                break
            if averaged:  # a checkpoint where the replicas agree (every H steps)
                job.checkpoint(group, step + 1, replica, clock, each=True)
        log.close()
        return outcome(clock, log, step + 1, resumed=start)

    def step_bytes(self, config: SGDConfig, size: int, workers: int) -> int:
        return 2 * 2 * (workers - 1) * size // (config.sync_every or config.max_steps)

    def explain(self, rows: int, features: int, workers: int, config: SGDConfig) -> list[Step]:
        P, B, p = count_parameters(features, 2, config), config.batch_size, workers
        H = config.sync_every or config.max_steps
        ring = int(2 * (p - 1) / p * 8 * P)
        return [
            Step(
                kind="map",
                function="model.Replica.step",
                where=f"each of {p} workers",
                does=f"a local step on ~{B // p} own rows",
                flops=6 * B * P / p + 4 * P,
                sends=0,
            ),
            Step(
                kind="combine",
                function="scaling.collectives.torch.Group.allreduce",
                where=f"ring over {p} workers, every {H} steps",
                does="sum the parameters (the bytes are per step: a round's over H)",
                flops=P / H,
                sends=ring // H,
                pattern="ring",
                transport="gloo",
                repeats=1 / H,
            ),
            Step(
                kind="update",
                function="local_sgd.LocalSGD.member",
                where=f"each of {p} workers",
                does="divide by p: the average",
                flops=P / H,
                sends=0,
            ),
        ]


STRATEGY = LocalSGD()
