"""Synchronous SGD, gradients all-reduced peer to peer, bucket by bucket as backward goes.

What DistributedDataParallel does: each replica computes the gradient of its ~B / p rows of
the global batch; gradient buckets (``bucket_mb``, parameters in reverse order, the order
backward produces them) are all-reduced by gloo as soon as they are complete, overlapping the
rest of backward; then every replica takes the same optimiser step. No driver in the loop.
"""

from __future__ import annotations

import math
import time

from jobs.sgd.batches import GlobalBatches, Shard
from jobs.sgd.config import SGDConfig, count_parameters
from jobs.sgd.gang import GangBrief, GangStrategy, evaluate, outcome
from jobs.sgd.model import Replica
from jobs.sgd.strategy import Clock
from scaling.collectives.torch import Group
from scaling.measure.trace import StepLog
from scaling.model.steps import Step


def buckets(replica: Replica, cap_bytes: float) -> list[tuple[int, int, int]]:
    """Gradient buckets as DDP forms them: parameters in reverse order (the order backward
    produces their gradients), cut when a bucket reaches ``cap_bytes``.

    Returns ``(start, stop, parameters)`` slices of the flat gradient.
    """
    itemsize = replica.grad.element_size()
    out, stop, count = [], None, 0
    for a, b in reversed(replica.slices):
        stop = b if stop is None else stop
        count += 1
        if (stop - a) * itemsize >= cap_bytes:
            out.append((a, stop, count))
            stop, count = None, 0
    if stop is not None:
        out.append((0, stop, count))
    return out


class RingAllreduce(GangStrategy):
    name = "ring-allreduce"
    resumable = True

    def member(
        self, group: Group, shard: Shard, replica: Replica, job: GangBrief, log: StepLog
    ) -> dict:
        """Per step each replica computes its ~B / p rows (O(B P / p) flops) and sends
        2 (p - 1) / p x P numbers in the ring all-reduce."""
        config = job.config
        batches = GlobalBatches(job.rows, config.holdout, config.seed, config.batch_size)
        cuts = buckets(replica, config.bucket_mb * 2**20)
        pending: list = []
        ready = [0] * len(cuts)
        owner = {}  # parameter index -> bucket
        index = len(replica.params) - 1
        for k, (_, _, count) in enumerate(cuts):
            for _ in range(count):
                owner[index] = k
                index -= 1

        def hook(k: int):
            def ready_hook(_param) -> None:
                ready[k] += 1
                if ready[k] == cuts[k][2]:
                    a, b, _ = cuts[k]
                    pending.append(group.allreduce(replica.grad[a:b]))

            return ready_hook

        if group.world > 1:
            for i, p in enumerate(replica.params):
                p.register_post_accumulate_grad_hook(hook(owner[i]))
        clock = Clock(config)
        step = start = job.resume(group.rank, replica, clock)
        log.open()
        for step in range(start, config.max_steps):
            t0 = time.perf_counter()
            X, y = shard.batch(shard.local(batches(step)))
            t1 = time.perf_counter()
            ready[:] = [0] * len(cuts)
            replica.grad_sum(X, y)
            if len(X) == 0 and group.world > 1:  # no rows here this step: no hooks fired
                pending.extend(group.allreduce(replica.grad[a:b]) for a, b, _ in cuts)
            t2 = time.perf_counter()
            for work in pending:  # what backward did not hide of the all-reduces
                group.wait(work)
            pending.clear()
            t3 = time.perf_counter()
            replica.step(1.0 / config.batch_size)
            t4 = time.perf_counter()
            log.add(t4 - t0, (t2 - t1) + (t4 - t3), t3 - t2)
            if clock.due(step) and evaluate(clock, step, group, shard, replica):
                break
            job.checkpoint(group, step + 1, replica, clock)
        log.close()
        return outcome(clock, log, step + 1, resumed=start)

    def step_bytes(self, config: SGDConfig, size: int, workers: int) -> int:
        return 2 * 2 * (workers - 1) * size  # each of p sends and receives 2 (p - 1) / p x size

    def explain(self, rows: int, features: int, workers: int, config: SGDConfig) -> list[Step]:
        P, B, p = count_parameters(features, 2, config), config.batch_size, workers
        return [
            Step(
                kind="map",
                function="model.Replica.grad_sum",
                where=f"each of {p} workers",
                does=f"forward and backward over ~{B // p} rows of the batch",
                flops=6 * B * P / p,
                sends=0,
            ),
            Step(
                kind="combine",
                function="scaling.collectives.torch.Group.allreduce",
                where=f"ring over {p} workers",
                does=f"all-reduce gradient buckets of {config.bucket_mb:g} MB during backward",
                flops=P,
                sends=int(2 * (p - 1) / p * 8 * P),
                pattern="ring",
                transport="gloo",
                repeats=max(1, math.ceil(8 * P / (config.bucket_mb * 2**20))),
            ),
            Step(
                kind="update",
                function="model.Replica.step",
                where=f"each of {p} workers",
                does="the same optimiser step",
                flops=4 * P,
                sends=0,
            ),
        ]


STRATEGY = RingAllreduce()
