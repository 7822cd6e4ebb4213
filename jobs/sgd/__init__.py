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

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from jobs.sgd.config import (
    ITERATION,
    STRATEGIES,
    SGDConfig,
    count_parameters,
    get_strategy,
    step_bytes,
)
from scaling.data import Classification, Source
from scaling.job import NO_CONTEXT, Baseline, Job, RunContext

if TYPE_CHECKING:
    from jobs.sgd.strategy import SGDResult
    from scaling.engines import Dataset, Engine
    from scaling.model.steps import Step


class SGD(Job[SGDConfig, "SGDResult"]):
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
        context: RunContext = NO_CONTEXT,
    ) -> SGDResult:
        from jobs.sgd.run import fit

        return fit(engine, ds, config, context.on_iteration, context.checkpoints)

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

    def timed(self, config: SGDConfig, iterations: int) -> SGDConfig:
        return replace(config, max_steps=iterations, eval_every=iterations, target_accuracy=0.0)

    def parameters(self, features: int, config: SGDConfig) -> int:
        return count_parameters(features, 2, config)  # the weights and biases, two classes

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

__all__ = ["ITERATION", "JOB", "STRATEGIES", "SGDConfig", "count_parameters", "step_bytes"]
