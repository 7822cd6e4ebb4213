"""Training an SGD job: check the data, run the strategy; and the single-process reference."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from jobs.common import label_classes
from jobs.sgd.batches import GlobalBatches
from jobs.sgd.config import SGDConfig, count_parameters, get_strategy
from jobs.sgd.model import build_model, make_optimizer
from jobs.sgd.strategy import Problem, SGDResult
from scaling.data import Source
from scaling.engines import Dataset, Engine
from scaling.errors import DataError, UsageError
from scaling.job import OnIteration
from scaling.run.checkpoint import Checkpoints


def fit(
    engine: Engine,
    ds: Dataset,
    config: SGDConfig,
    on_iteration: OnIteration | None = None,
    checkpoints: Checkpoints | None = None,
) -> SGDResult:
    """Train the model of ``config`` on a labelled dataset cached on ``engine``.

    Parameters
    ----------
    engine, ds : Engine, Dataset
        Where the rows are (``engine.load(source)`` with a labelled source).
    config : SGDConfig
        Strategy, model, optimiser, batch, stopping rule.
    on_iteration : callable, optional
        ``on_iteration(step, steps_done)`` after each step (gang strategies: after training).
    checkpoints : Checkpoints, optional
        Where a gang strategy that can go on from one keeps its state.

    Notes
    -----
    A step processes B rows in all: O(B P / p) flops per worker for P parameters. What moves
    per step: driver-allreduce 2 P numbers per worker through the driver; ring-allreduce
    2 (p - 1) / p P per worker, peer to peer; local-sgd that every H steps; parameter-server
    2 P per worker per local step, all through rank 0. Each step is a trace span ``step``;
    gang strategies measure theirs inside the workers.
    """
    with engine.trace.span("init"):
        classes = _check(engine, ds, config)
    problem = Problem(engine=engine, ds=ds, config=config, classes=classes, checkpoints=checkpoints)
    result = get_strategy(config.strategy).train(problem, on_iteration or (lambda i, m: None))
    result.parameters = count_parameters(ds.features, len(classes), config)
    result.batch_size = config.batch_size
    if config.target_accuracy and result.target_step is None:
        best = max((h["accuracy"] for h in result.history), default=0.0)
        warnings.warn(
            f"held-out accuracy {config.target_accuracy} not reached within {config.max_steps} "
            f"steps (best {best:.4f}); raise --max-steps or tune --lr. The run is recorded "
            "with what it reached",
            UserWarning,
            stacklevel=2,
        )
    return result


def _check(engine: Engine, ds: Dataset, config: SGDConfig) -> np.ndarray:
    """Labels, enough rows per batch and a model that fits a worker; the sorted classes."""
    if not ds.labelled:
        raise DataError("SGD trains a classifier and needs labels: pass --label COLUMN with --data")
    if config.batch_size < engine.workers:
        raise UsageError(
            f"a global batch of {config.batch_size} rows is smaller than {engine.workers} "
            f"workers: some would have no rows each step; use --batch-size >= {engine.workers}"
        )
    classes = label_classes(engine, ds)
    if len(classes) < 2:
        raise DataError(f"the labels hold one class only ({classes.tolist()}); need 2 or more")
    need = memory_needed(ds.features, len(classes), config, ds.dtype, engine.workers)
    have = engine.worker_memory
    if need > have:
        raise UsageError(
            f"the model needs ~{need / 2**30:.1f} GiB per worker "
            f"({count_parameters(ds.features, len(classes), config):,} parameters with their "
            f"gradients and optimiser state, and the activations of a batch share) but a "
            f"worker has ~{have / 2**30:.1f} GiB; use narrower --hidden layers, a smaller "
            "--batch-size, or fewer workers with more memory each"
        )
    return classes


def memory_needed(features: int, classes: int, config: SGDConfig, dtype: str, workers: int) -> int:
    """Bytes a worker needs for the model: parameters, gradients, optimiser state, server copy
    and snapshots (parameter server), and activations of its share of a batch."""
    itemsize = np.dtype(dtype).itemsize
    params = count_parameters(features, classes, config)
    copies = get_strategy(config.strategy).copies(config)
    share = math.ceil(config.batch_size / workers)
    activations = 3 * share * (features + sum(config.widths) + classes)
    return int(itemsize * (copies * params + activations))


def reference(source: Source, config: SGDConfig, steps: int, dtype: str = "float64") -> nn.Module:
    """Single-process SGD in plain torch: the same model, initialisation and batches."""
    return reference_trainer(source, config, dtype)(steps)


def reference_trainer(
    source: Source, config: SGDConfig, dtype: str = "float64"
) -> Callable[[int], nn.Module]:
    """:func:`reference` with the rows read once: ``train(steps)`` trains a fresh model (what
    COST times, with no reading in it)."""
    X, y = source.read(0, source.rows)
    classes = np.unique(y)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=dtype))
    yt = torch.from_numpy(np.searchsorted(classes, y).astype(np.int64))

    def train(steps: int) -> nn.Module:
        model = build_model(source.features, len(classes), config, dtype)
        optimizer = make_optimizer(model.parameters(), config)
        batches = GlobalBatches(source.rows, config.holdout, config.seed, config.batch_size)
        for t in range(steps):
            index = torch.from_numpy(batches(t))
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(Xt[index]), yt[index]).backward()
            optimizer.step()
        return model

    return train


def one_thread(train: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
    """``train`` on one torch thread: the baseline of COST."""

    def on_one(steps: int) -> nn.Module:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return train(steps)
        finally:
            torch.set_num_threads(threads)

    return on_one
