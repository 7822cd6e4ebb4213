"""Data-parallel SGD on a torch model, four ways: driver all-reduce, ring all-reduce, local SGD,
and an asynchronous parameter server.

Run it (one line each)::

    scaling run sgd --engine local --rows 100000 --features 32
    scaling run sgd --engine ray   --workers 1,2 --strategy ring-allreduce --hidden 256,256
    scaling run sgd --engine dask  --workers 2 --strategy local-sgd --sync-every 8
    scaling run sgd --engine spark --workers 2 --strategy parameter-server --target-accuracy 0.9

The model (softmax regression, or an MLP of ``--hidden`` widths) is trained on the training
rows with mini-batches of ``batch_size`` rows in all (the *global* batch), and scored on the
held-out rows. Every worker keeps its partitions and a model replica. A step is one global
batch, whatever the strategy, so that steps, samples and accuracy compare across strategies.
Each strategy is one module behind one interface (:class:`~jobs.sgd.strategy.Strategy`):

- :mod:`~jobs.sgd.driver_allreduce`: per step, map (each worker's summed gradient over its rows
  of the batch) -> combine (sum, on the workers) -> update on the driver, which ships the
  parameters back with the next step's rows. Two driver round trips' worth of latency per step.
- :mod:`~jobs.sgd.ring_allreduce` (inside the engine's gang): each replica computes its share
  of the batch's gradient; buckets of it are all-reduced peer to peer (gloo) as backward
  produces them, as DistributedDataParallel does; every replica takes the same step.
- :mod:`~jobs.sgd.local_sgd`: each replica takes ``sync_every`` (H) steps on batches of its own
  rows, then the replicas average their parameters (one all-reduce). ``sync_every=0`` averages
  once, at the end (one-shot averaging, Zinkevich et al., "Parallelized Stochastic Gradient
  Descent", 2010).
- :mod:`~jobs.sgd.parameter_server`: rank 0 also runs a server thread that holds the
  parameters and the optimiser; every replica pushes its gradient and pulls the parameters
  back, without waiting for the others (asynchronous SGD, Dean et al., "Large Scale
  Distributed Deep Networks", 2012); staleness is recorded per update.

The synchronous strategies draw each global batch from one permutation of the training rows
per epoch (:func:`jobs.sgd.batches.epoch_order`), which every process computes from the seed:
with any number of workers they follow single-process SGD (:func:`jobs.sgd.run.reference`)
step for step.

This module is the job's light half (config, Job contract): torch is imported by the
strategies, only when a run or ``explain`` needs one.
"""

from __future__ import annotations

import importlib
import itertools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from scaling.data import Classification, Source
from scaling.errors import UsageError, check_choice, check_count
from scaling.execution import EXECUTIONS
from scaling.job import Baseline, Job, OnIteration

if TYPE_CHECKING:
    from jobs.sgd.strategy import SGDResult, Strategy
    from scaling.engines import Dataset, Engine
    from scaling.model.explain import Step

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


@dataclass(frozen=True)
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


class SGD(Job):
    name = "sgd"
    config = SGDConfig
    # A 64-64 MLP with batch 512 is latency-bound: slower at 2 workers than at 1 on 2 cores.
    demo_config = SGDConfig(hidden="256,256", batch_size=4096, max_steps=60)
    demo_rows = 200_000  # the steps see 60 batches of 4,096: more rows only load longer
    iteration = ITERATION
    unit = "samples"
    headline = "heldout_accuracy"
    explain_note = (
        "Compute per step is ~6 B P / p flops; communication is P numbers whatever B, so larger "
        "batches and models with more work per parameter scale better. The driver round trip "
        "costs two engine latencies per step; the ring none; local SGD divides the bytes by H; "
        "a parameter server funnels p P numbers per step through one process."
    )

    def fit(
        self,
        engine: Engine,
        ds: Dataset,
        config: SGDConfig,
        on_iteration: OnIteration | None = None,
    ) -> SGDResult:
        from jobs.sgd.run import fit

        return fit(engine, ds, config, on_iteration)

    def synthetic(self, rows: int, features: int, seed: int, config: SGDConfig) -> Source:
        return Classification(rows=rows, features=features, seed=seed)

    def baseline(self, source: Source, config: SGDConfig, dtype: str = "float64") -> Baseline:
        from jobs.sgd.run import one_thread, reference_trainer

        return Baseline(
            "torch, one process, 1 thread", one_thread(reference_trainer(source, config, dtype))
        )

    def explain(self, rows: int, features: int, workers: int, config: SGDConfig) -> list[Step]:
        return get_strategy(config.strategy).explain(rows, features, workers, config)

    def execution(self, config: SGDConfig) -> str:
        return get_strategy(config.strategy).execution(config)

    def quality(self, result: SGDResult) -> dict:
        out = {
            "heldout_accuracy": result.accuracy,
            "steps": result.steps,
            "train_seconds": result.train_seconds,
            "parameters": result.parameters,
            "target_reached": result.target_step is not None,
            "steps_to_target": result.target_step,
            "samples_to_target": result.target_step and result.target_step * result.batch_size,
            "seconds_to_target": result.target_seconds,
        }
        if result.staleness is not None and len(result.staleness):
            s = result.staleness
            out.update(
                staleness_mean=float(s.mean()),
                staleness_p95=float(np.percentile(s, 95)),
                staleness_max=int(s.max()),
            )
        return out

    variants: ClassVar[dict[str, dict]] = {
        s: {"strategy": s}
        for s in ("ring-allreduce", "driver-allreduce", "local-sgd", "parameter-server")
    }

    def resumable(self, config: SGDConfig) -> bool:
        return getattr(get_strategy(config.strategy), "resumable", False)

    def parameters(self, features: int, config: SGDConfig) -> int:
        return count_parameters(features, 2, config)  # the weights and biases, two classes

    def interview(self, ask) -> list:
        from scaling.present.interview import Answer

        ring, local, server = "ring-allreduce", "local-sgd", "parameter-server"
        a = Answer("The training data is too big for one machine: what do you do with SGD?")
        a.say(
            "Shard the rows over the workers and keep a replica of the model on each (data "
            f"parallelism): each worker holds {ask.data_bytes(a)} of the rows, which never "
            "move. Each step every worker computes the gradient of its share of the batch "
            f"({ask.step(a, 'map', 'flops', variant=ring)} for the busiest), and the "
            "workers all-reduce the gradients in a ring while backward is still running "
            "(buckets, as PyTorch's DistributedDataParallel does): each sends "
            f"{ask.step(a, 'combine', 'sends', variant=ring)} per step for the model's "
            f"{ask.parameters(a)} parameters, whatever the rows, and every replica takes the "
            "same step: synchronous SGD, the single-machine algorithm on the same batch, "
            "split p ways."
        )
        a.say(
            "When the all-reduce costs too much, local SGD averages the models every H steps "
            f"instead ({ask.step(a, 'combine', 'sends', variant=local)} per step on average), "
            "at the price of replicas drifting apart between averages. A parameter server "
            "takes every gradient and sends back parameters through one process: "
            f"{ask.step(a, '*', 'moved', variant=server)} a step all through rank 0, its hot "
            "spot; asynchronous updates hide stragglers but apply stale gradients. If the "
            "model, not the data, is too big for one machine, shard the model instead "
            "(tensor or pipeline parallelism, or ZeRO/FSDP's sharded optimiser state)."
        )
        bigger = {"batch_size": 4 * ask.config.batch_size}
        follow = Answer("Follow-up: why do larger batches scale better, and what stops them?")
        follow.say(
            "Per step the compute grows with the batch and the communication does not: four "
            f"times the batch makes the busiest worker's gradient "
            f"{ask.step(follow, 'map', 'flops', variant=ring, config=bigger)} instead of "
            f"{ask.step(follow, 'map', 'flops', variant=ring)}, while each worker still sends "
            f"{ask.step(follow, 'combine', 'sends', variant=ring, config=bigger)}. What stops "
            "it is statistics, not systems: past a critical batch size a step does not "
            "reduce the loss more, so steps to a target stop falling (Shallue et al., JMLR "
            "2019; Goyal et al.'s linear learning-rate scaling with warm-up holds up to a "
            "point)."
        )
        return [a, follow]

    def iterations(self, config: SGDConfig) -> int:
        return config.max_steps

    def rows_per_iteration(self, config: SGDConfig, rows: int) -> int:
        return config.batch_size  # a step is one global batch

    def weak_config(self, config: SGDConfig, workers: int) -> SGDConfig:
        # Weak scaling keeps each worker's share of the batch: the global batch grows with p.
        return replace(config, batch_size=config.batch_size * workers)

    def arrays(self, result: SGDResult) -> dict[str, np.ndarray]:
        return {"params": result.params}  # the flat parameter vector


JOB = SGD()
