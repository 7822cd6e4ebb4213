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
batch, whatever the strategy, so that steps, samples and accuracy compare across strategies:

- ``driver-allreduce`` (:func:`_driver_allreduce`): per step, map (:func:`_batch_grad`: each
  worker's summed gradient over its rows of the batch) -> combine (:func:`_add`: sum, on the
  workers) -> update on the driver (:meth:`Replica.step`), which ships the parameters back
  with the next step's rows. Two driver round trips' worth of latency per step.
- ``ring-allreduce`` (:func:`_ring_allreduce`, inside the engine's gang): each replica computes
  its share of the batch's gradient; buckets of it are all-reduced peer to peer
  (torch.distributed, gloo) as backward produces them, as DistributedDataParallel does; every
  replica then takes the same optimiser step. No driver in the loop.
- ``local-sgd`` (:func:`_local_sgd`): each replica takes ``sync_every`` (H) steps on batches of
  its own rows, then the replicas average their parameters (one all-reduce). H = 1 is
  synchronous SGD (for SGD with or without momentum); ``sync_every=0`` averages once, at the
  end (one-shot averaging, Zinkevich et al., "Parallelized Stochastic Gradient Descent", 2010).
- ``parameter-server`` (:func:`_parameter_server`): rank 0 also runs a server thread that
  holds the parameters and the optimiser; every replica pushes its gradient and pulls the
  parameters back, without waiting for the others (asynchronous SGD, Dean et al., "Large
  Scale Distributed Deep Networks", 2012). A gradient computed on parameters ``s`` updates
  old is ``s`` stale; staleness is recorded per update.

The synchronous strategies draw each global batch from one permutation of the training rows
per epoch (:func:`epoch_order`), which every process computes from the seed: with any number
of workers they follow single-process SGD (:func:`reference`) step for step.
"""

from __future__ import annotations

import datetime
import itertools
import math
import socket
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from jobs.common import label_classes
from scaling.collective import own_address
from scaling.data import Classification, Part, Source, held_out
from scaling.engines import Dataset, Engine
from scaling.engines.base import GangContext, pin_threads
from scaling.errors import DataError, UsageError, check_choice, check_count
from scaling.explain import Step, tree_depth
from scaling.trace import Span

NAME = "sgd"
ITERATION = "step"
"""Trace span of one step: one global batch of training rows."""
STRATEGIES = ("driver-allreduce", "ring-allreduce", "local-sgd", "parameter-server")
GANG_STRATEGIES = STRATEGIES[1:]
MODELS = ("mlp", "softmax")
OPTIMIZERS = ("sgd", "adam")
EVAL_BLOCK = 65_536
"""Held-out rows scored per forward pass: bounds the activations' memory."""


@dataclass(frozen=True)
class SGDConfig:
    """Validated settings of a data-parallel SGD run.

    ``batch_size`` is the global batch (all workers together). ``max_steps`` counts global
    batches. ``target_accuracy`` (0: none): stop at the first evaluation, every ``eval_every``
    steps, whose held-out accuracy reaches it (the parameter server, being asynchronous, trains
    to ``max_steps`` and finds the first snapshot that reached it afterwards). ``sync_every``:
    local-SGD's H (0: average once, at the end). ``bucket_mb``: gradient bucket size of
    ring-allreduce (DDP's ``bucket_cap_mb``). ``timeout``: seconds a collective may wait for
    a peer before the run fails.
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

    def __post_init__(self) -> None:
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("model", self.model, MODELS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
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

    @property
    def max_iter(self) -> int:  # what the runner's progress bar counts
        return self.max_steps


CONFIG = SGDConfig
DEMO_CONFIG = SGDConfig(hidden="256,256", batch_size=4096, max_steps=60)
"""What ``scaling demo`` runs: 60 ring-allreduce steps of a 256-256 MLP, batch 4096 (a 64-64
MLP with batch 512 is latency-bound: slower at 2 workers than at 1 on 2 cores)."""


@dataclass
class SGDResult:
    """Final parameters, held-out accuracy history, time and samples to the target, and the
    per-step measurements of the worker that was slowest at each step."""

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


# ---------------------------------------------------------------- model and replicas


def build_model(features: int, classes: int, config: SGDConfig, dtype: str) -> nn.Module:
    """Softmax regression or an MLP (ReLU), in ``dtype``, initialised from ``config.seed``."""
    sizes = (features, *config.widths, classes)
    layers: list[nn.Module] = []
    with torch.random.fork_rng():  # the seed decides the weights; the caller's RNG is kept
        torch.manual_seed(config.seed)
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b, dtype=getattr(torch, dtype)))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_optimizer(params, config: SGDConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def count_parameters(features: int, classes: int, config: SGDConfig) -> int:
    sizes = (features, *config.widths, classes)
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


class Replica:
    """A model whose parameters and gradients are views of two flat buffers.

    Flat buffers make every collective one contiguous tensor (or a few bucket slices of it):
    no packing and unpacking per step, as DDP's gradient buckets and apex's flat master
    weights do. The optimiser updates the views in place.
    """

    def __init__(self, features: int, classes: int, config: SGDConfig, dtype: str) -> None:
        self.model = build_model(features, classes, config, dtype)
        params = list(self.model.parameters())
        total = sum(p.numel() for p in params)
        self.flat = torch.empty(total, dtype=params[0].dtype)
        self.grad = torch.zeros_like(self.flat)
        offset = 0
        self.slices = []
        for p in params:
            n = p.numel()
            self.flat[offset : offset + n].copy_(p.data.view(-1))
            p.data = self.flat[offset : offset + n].view_as(p)
            p.grad = self.grad[offset : offset + n].view_as(p)
            self.slices.append((offset, offset + n))
            offset += n
        self.params = params
        self.optimizer = make_optimizer(params, config)
        self.loss = nn.CrossEntropyLoss(reduction="sum")

    def set(self, flat: np.ndarray | torch.Tensor) -> None:
        """Load a flat parameter vector (a NumPy array may be read-only: Ray's zero-copy)."""
        if isinstance(flat, torch.Tensor):
            self.flat.copy_(flat)
        else:
            self.flat.numpy()[:] = flat

    def grad_sum(self, X: torch.Tensor, y: torch.Tensor) -> float:
        """Zero the gradient, then accumulate the summed loss's gradient over ``(X, y)``."""
        self.grad.zero_()
        if len(X) == 0:
            return 0.0
        loss = self.loss(self.model(X), y)
        loss.backward()
        return float(loss.detach())

    def step(self, scale: float) -> None:
        """Scale the gradient (1 / batch rows: a mean) and take one optimiser step."""
        self.grad.mul_(scale)
        self.optimizer.step()

    @torch.no_grad()
    def correct(self, X: torch.Tensor, y: torch.Tensor) -> int:
        """How many of ``(X, y)`` the model classifies right."""
        hits = 0
        for a in range(0, len(X), EVAL_BLOCK):
            hits += int(
                (self.model(X[a : a + EVAL_BLOCK]).argmax(1) == y[a : a + EVAL_BLOCK]).sum()
            )
        return hits


def _pin_torch() -> None:
    pin_threads()
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # one core per worker, like the BLAS (see THREAD_ENV)


# ---------------------------------------------------------------- which rows each step uses


def training_rows(rows: int, holdout: float, seed: int) -> np.ndarray:
    """Global indices of the training rows (the others are held out), by row, not partition."""
    return np.flatnonzero(~held_out(seed, 0, rows, holdout))


def epoch_order(train: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The training rows in the order epoch ``epoch`` visits them (the same in every process)."""
    return train[np.random.default_rng((seed, 7, epoch)).permutation(len(train))]


class GlobalBatches:
    """Global batch ``t``: rows ``[j B, (j + 1) B)`` of its epoch's order (a partial last batch
    of an epoch is dropped, as ``DataLoader(drop_last=True)`` does)."""

    def __init__(self, rows: int, holdout: float, seed: int, batch: int) -> None:
        self.train = training_rows(rows, holdout, seed)
        self.seed, self.batch = seed, batch
        self.per_epoch = len(self.train) // batch
        if self.per_epoch == 0:
            raise DataError(
                f"{len(self.train)} training rows are fewer than one batch of {batch}; "
                "lower --batch-size or --holdout"
            )
        self._epoch, self._order = -1, self.train

    def __call__(self, step: int) -> np.ndarray:
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, epoch_order(self.train, self.seed, epoch)
        return self._order[j * self.batch : (j + 1) * self.batch]


class Shard:
    """A worker's partitions as one tensor, with a map from global row to local row."""

    def __init__(self, parts: list[Part], classes: np.ndarray, holdout: float, seed: int):
        parts = sorted(parts, key=lambda p: p.start)
        X = np.concatenate([p.X for p in parts]) if len(parts) > 1 else parts[0].X
        y = np.concatenate([p.y for p in parts]) if len(parts) > 1 else parts[0].y
        self.X = torch.from_numpy(np.ascontiguousarray(X))
        self.y = torch.from_numpy(np.searchsorted(classes, y).astype(np.int64))
        self.starts = np.array([p.start for p in parts])
        self.stops = np.array([p.stop for p in parts])
        self.offsets = np.cumsum([0] + [p.stop - p.start for p in parts])[:-1]
        held = np.concatenate([held_out(seed, p.start, p.stop, holdout) for p in parts])
        self.train = np.flatnonzero(~held)
        self.held = torch.from_numpy(np.flatnonzero(held))

    def local(self, rows: np.ndarray) -> torch.Tensor:
        """Local indices of the global ``rows`` this shard holds (the others are skipped)."""
        k = np.searchsorted(self.starts, rows, side="right") - 1
        k = np.maximum(k, 0)
        mine = (rows >= self.starts[k]) & (rows < self.stops[k])
        return torch.from_numpy(rows[mine] - self.starts[k[mine]] + self.offsets[k[mine]])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[index], self.y[index]

    def held_correct(self, replica: Replica) -> tuple[int, int]:
        return replica.correct(self.X[self.held], self.y[self.held]), len(self.held)


def local_share(batch: int, world: int, rank: int) -> int:
    """Rank ``rank``'s rows of a global batch split as evenly as it goes."""
    return batch // world + (rank < batch % world)


class LocalBatches:
    """Batches of a replica's own training rows: its own permutation per epoch."""

    def __init__(self, shard: Shard, size: int, seed: int, rank: int) -> None:
        self.rows, self.size, self.seed, self.rank = shard.train, size, seed, rank
        self.per_epoch = max(len(self.rows) // size, 1)
        self._epoch, self._order = -1, self.rows

    def __call__(self, step: int) -> torch.Tensor:
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            rng = np.random.default_rng((self.seed, 11, self.rank, epoch))
            self._epoch, self._order = epoch, self.rows[rng.permutation(len(self.rows))]
        return torch.from_numpy(self._order[j * self.size : (j + 1) * self.size])


# ---------------------------------------------------------------- driver-allreduce


_REPLICAS: dict[tuple, Replica] = {}
"""A worker's model replica per (shape, config): built once, reused by every step's map."""


def _worker_replica(features: int, classes: np.ndarray, config: SGDConfig, dtype: str) -> Replica:
    key = (features, len(classes), config.model, config.widths, dtype)
    if key not in _REPLICAS:
        _pin_torch()
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


def _add(a: tuple, b: tuple) -> tuple:
    """Combine step: element-wise sum of partial results."""
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _driver_allreduce(problem: _Problem, on_iteration) -> SGDResult:
    engine, ds, config = problem.engine, problem.ds, problem.config
    replica = Replica(ds.features, len(problem.classes), config, ds.dtype)
    batches = GlobalBatches(ds.rows, config.holdout, config.seed, config.batch_size)
    clock, step = _Clock(config), 0
    for step in range(config.max_steps):
        with engine.trace.span(ITERATION):
            rows = batches(step)
            grad, _, count = engine.map_reduce(
                ds, _batch_grad, _add, replica.flat.numpy(), rows, problem.classes, config
            )
            replica.grad.numpy()[:] = grad
            replica.step(1.0 / count)
        on_iteration(step, float(step + 1))
        if clock.due(step):
            with clock.paused(), engine.trace.span("eval"):
                hits, total = engine.map_reduce(
                    ds, _held_correct, _add, replica.flat.numpy(), problem.classes, config
                )
            if clock.evaluated(step, hits / total):
                break
    return clock.result(replica.flat.numpy().copy(), problem, step + 1)


class _Clock:
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

    def result(self, params: np.ndarray, problem: _Problem, steps: int) -> SGDResult:
        return SGDResult(
            params,
            problem.classes.tolist(),
            steps,
            self.accuracy,
            self.history,
            *(self.target or (None, None)),
            train_seconds=self.elapsed(),
        )

    def outcome(self, log: _StepLog, steps: int, seconds: float | None = None) -> dict:
        """What a gang member returns: its step log and, from rank 0, the evaluations."""
        return {
            "log": log.array(),
            "history": self.history,
            "target": self.target,
            "steps": steps,
            "accuracy": self.accuracy,
            "seconds": self.elapsed() if seconds is None else seconds,
        }


# ---------------------------------------------------------------- the gang strategies


class Group:
    """A gloo process group of the gang's members, made without torch's global state.

    ``torch.distributed.init_process_group`` sets one process-wide default group, which a
    worker process that runs many gangs (a Ray actor, a Dask worker, a reused Spark Python
    worker; threads of the local engine) cannot have twice; a ``ProcessGroupGloo`` object is
    just an object.
    """

    def __init__(self, ctx: GangContext, timeout: float) -> None:
        self.rank, self.world = ctx.rank, ctx.world
        self.address = own_address(ctx.host)
        delta = datetime.timedelta(seconds=timeout)
        self.store = torch.distributed.TCPStore(
            ctx.host, ctx.port, ctx.world, ctx.rank == 0, timeout=delta, wait_for_workers=True
        )
        self.pg = None
        if ctx.world > 1:
            options = torch.distributed.ProcessGroupGloo._Options()
            options._devices = [
                torch.distributed.ProcessGroupGloo.create_device(hostname=self.address)
            ]
            options._timeout = delta
            self.pg = torch.distributed.ProcessGroupGloo(self.store, ctx.rank, ctx.world, options)

    def allreduce(self, tensor: torch.Tensor):
        """Sum ``tensor`` in place over the members (asynchronously: returns a work handle)."""
        return self.pg.allreduce([tensor]) if self.pg else None

    def sum(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64)
        if self.pg:
            self.pg.allreduce([t]).wait()
        return t.tolist()

    def broadcast(self, tensor: torch.Tensor, root: int = 0) -> None:
        if self.pg:
            options = torch.distributed.BroadcastOptions()
            options.rootRank = root
            self.pg.broadcast([tensor], options).wait()


@dataclass(frozen=True)
class _GangJob:
    """What every gang member gets: the config, data shape, classes and initial parameters."""

    config: SGDConfig
    rows: int
    classes: np.ndarray
    init: np.ndarray


def _gang_member(ctx: GangContext, parts: list[Part], job: _GangJob) -> dict:
    """One replica of a gang strategy; returns its per-step log (and rank 0 the parameters)."""
    config = job.config
    _pin_torch()
    group = Group(ctx, config.timeout)
    shard = Shard(parts, job.classes, config.holdout, config.seed)
    replica = Replica(shard.X.shape[1], len(job.classes), config, str(shard.X.dtype).split(".")[-1])
    replica.set(job.init)
    train = {
        "ring-allreduce": _ring_allreduce,
        "local-sgd": _local_sgd,
        "parameter-server": _parameter_server,
    }[config.strategy]
    out = train(group, shard, replica, job)
    if ctx.rank == 0:
        out["params"] = replica.flat.numpy().copy()
    return out


def _evaluate(clock: _Clock, step: int, group: Group, shard: Shard, replica: Replica) -> bool:
    """Score the (common) model on every member's held-out rows; whether the target is met."""
    with clock.paused():
        hits, total = group.sum(list(shard.held_correct(replica)))
    return clock.evaluated(step, hits / total)


class _StepLog:
    """Per step: wall, compute, communication, overhead seconds."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float, float, float]] = []

    def add(self, wall: float, compute: float, comm: float) -> None:
        self.rows.append((wall, compute, comm, max(wall - compute - comm, 0.0)))

    def array(self) -> np.ndarray:
        return np.array(self.rows).reshape(-1, 4)


def _buckets(replica: Replica, cap_bytes: float) -> list[tuple[int, int, int]]:
    """Gradient buckets as DDP forms them: parameters in reverse order (the order backward
    produces their gradients), cut when a bucket reaches ``cap_bytes``.

    Returns ``(start, stop, parameters)`` slices of the flat gradient.
    """
    itemsize = replica.grad.element_size()
    buckets, stop, count = [], None, 0
    for a, b in reversed(replica.slices):
        stop = b if stop is None else stop
        count += 1
        if (stop - a) * itemsize >= cap_bytes:
            buckets.append((a, stop, count))
            stop, count = None, 0
    if stop is not None:
        buckets.append((0, stop, count))
    return buckets


def _ring_allreduce(group: Group, shard: Shard, replica: Replica, job: _GangJob) -> dict:
    """Synchronous SGD, all-reduced peer to peer, bucket by bucket as backward goes.

    Notes
    -----
    Per step each replica computes its ~B / p rows (O(B P / p) flops) and sends
    2 (p - 1) / p x P numbers in the ring all-reduce; buckets that are complete before
    backward ends overlap their all-reduce with the rest of backward.
    """
    config = job.config
    batches = GlobalBatches(job.rows, config.holdout, config.seed, config.batch_size)
    buckets = _buckets(replica, config.bucket_mb * 2**20)
    pending: list = []
    ready = [0] * len(buckets)
    owner = {}  # parameter index -> bucket
    index = len(replica.params) - 1
    for k, (_, _, count) in enumerate(buckets):
        for _ in range(count):
            owner[index] = k
            index -= 1

    def hook(k: int):
        def ready_hook(_param) -> None:
            ready[k] += 1
            if ready[k] == buckets[k][2]:
                a, b, _ = buckets[k]
                pending.append(group.allreduce(replica.grad[a:b]))

        return ready_hook

    if group.world > 1:
        for i, p in enumerate(replica.params):
            p.register_post_accumulate_grad_hook(hook(owner[i]))
    log, clock, step = _StepLog(), _Clock(config), 0
    for step in range(config.max_steps):
        t0 = time.perf_counter()
        X, y = shard.batch(shard.local(batches(step)))
        t1 = time.perf_counter()
        ready[:] = [0] * len(buckets)
        replica.grad_sum(X, y)
        if len(X) == 0 and group.world > 1:  # no rows here this step: no hooks fired
            pending.extend(group.allreduce(replica.grad[a:b]) for a, b, _ in buckets)
        t2 = time.perf_counter()
        for work in pending:
            work.wait()
        pending.clear()
        t3 = time.perf_counter()
        replica.step(1.0 / config.batch_size)
        t4 = time.perf_counter()
        log.add(t4 - t0, (t2 - t1) + (t4 - t3), t3 - t2)
        if clock.due(step) and _evaluate(clock, step, group, shard, replica):
            break
    return clock.outcome(log, step + 1)


def _local_sgd(group: Group, shard: Shard, replica: Replica, job: _GangJob) -> dict:
    """H local steps on a replica's own rows, then parameter averaging (one all-reduce).

    Notes
    -----
    Per step O(B P / p) flops; every H steps each replica sends 2 (p - 1) / p x P numbers:
    H times less communication than synchronous SGD, at the price of replicas drifting apart.
    """
    config = job.config
    size = local_share(config.batch_size, group.world, group.rank)
    batches = LocalBatches(shard, size, config.seed, group.rank)
    every = config.sync_every or config.max_steps
    # Evaluate at averaging points only: that is when there is one model to score.
    clock = _Clock(config, every=math.ceil(config.eval_every / every) * every)
    log, step = _StepLog(), 0
    for step in range(config.max_steps):
        t0 = time.perf_counter()
        X, y = shard.batch(batches(step))
        t1 = time.perf_counter()
        replica.grad_sum(X, y)
        replica.step(1.0 / max(len(X), 1))
        t2 = time.perf_counter()
        if (step + 1) % every == 0 or step + 1 == config.max_steps:
            work = group.allreduce(replica.flat)
            if work:
                work.wait()
                replica.flat.div_(group.world)
        t3 = time.perf_counter()
        log.add(t3 - t0, t2 - t1, t3 - t2)
        if clock.due(step) and _evaluate(clock, step, group, shard, replica):
            break
    return clock.outcome(log, step + 1)


_HEADER = struct.Struct("!q")  # a parameter version (or -1: this worker is done)


def _parameter_server(group: Group, shard: Shard, replica: Replica, job: _GangJob) -> dict:
    """Asynchronous SGD: push the gradient of a local batch, pull the parameters, repeat.

    Notes
    -----
    Per local step a replica computes ~B / p rows (O(B P / p) flops) and exchanges 2 P numbers
    with the server; the server (a thread of rank 0) receives p P numbers per global step,
    the bottleneck that sharding parameters over several servers relieves.
    """
    config = job.config
    server = None
    if group.rank == 0:
        server = _Server(replica, job, group)
        group.store.set("ps", server.address)
    host, port = group.store.get("ps").decode().rsplit(":", 1)
    size = local_share(config.batch_size, group.world, group.rank)
    batches = LocalBatches(shard, size, config.seed, group.rank)
    log = _StepLog()
    params = replica.flat.numpy()
    grad = replica.grad.numpy()
    version = 0
    with socket.create_connection((host, int(port)), timeout=config.timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for step in range(config.max_steps):
            t0 = time.perf_counter()
            X, y = shard.batch(batches(step))
            t1 = time.perf_counter()
            replica.grad_sum(X, y)
            replica.grad.mul_(1.0 / max(len(X), 1))
            t2 = time.perf_counter()
            sock.sendall(_HEADER.pack(version))
            sock.sendall(memoryview(grad).cast("B"))
            (version,) = _HEADER.unpack(_recv_into(sock, bytearray(_HEADER.size)))
            _recv_into(sock, memoryview(params).cast("B"))
            t3 = time.perf_counter()
            log.add(t3 - t0, t2 - t1, t3 - t2)
        sock.sendall(_HEADER.pack(-1))
    # Score the server's snapshots together: rank 0 has them, every rank has held-out rows.
    if server:
        server.join()
    count = torch.tensor([len(server.snapshots) if server else 0], dtype=torch.int64)
    group.broadcast(count)
    shape = (int(count), replica.flat.numel() + 2)
    snaps = torch.empty(shape, dtype=torch.float64)
    if server:
        for i, (v, seconds, p) in enumerate(server.snapshots):
            snaps[i, 0], snaps[i, 1], snaps[i, 2:] = v, seconds, p
    group.broadcast(snaps)
    scores = []
    for row in snaps:
        replica.set(row[2:].to(replica.flat.dtype))
        scores.extend(shard.held_correct(replica))
    scores = group.sum(scores)
    clock = _Clock(config)
    for i, row in enumerate(snaps):
        global_step = max(int(row[0]) // group.world, 1) - 1
        clock.evaluated(global_step, scores[2 * i] / scores[2 * i + 1], float(row[1]))
    out = clock.outcome(log, config.max_steps, seconds=float(snaps[-1, 1]))
    if server:
        out["staleness"] = np.array(server.staleness)
    return out


class _Server:
    """The parameter server: a thread per connected replica, one optimiser behind a lock.

    Every ``eval_every`` global steps' worth of updates (``eval_every x p``) it snapshots the
    parameters with the training time, for the held-out scores computed after training.
    """

    def __init__(self, replica: Replica, job: _GangJob, group: Group) -> None:
        config, world = job.config, group.world
        self.replica, self.world, self.timeout = replica, world, config.timeout
        dtype = str(replica.flat.dtype).split(".")[-1]
        self.state = Replica(replica.model[0].in_features, len(job.classes), config, dtype)
        self.state.set(replica.flat)
        self.every = config.eval_every * world
        self.version, self.lock = 0, threading.Lock()
        self.staleness: list[int] = []
        self.snapshots: list[tuple[int, float, torch.Tensor]] = []
        self.listener = socket.create_server((group.address, 0), backlog=world)
        self.listener.settimeout(config.timeout)
        host, port = self.listener.getsockname()[:2]
        self.address = f"{host}:{port}"
        self.t0 = time.perf_counter()
        self.errors: list[BaseException] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.handlers: list[threading.Thread] = []
        self.acceptor.start()

    def _accept(self) -> None:
        try:
            for _ in range(self.world):
                conn, _ = self.listener.accept()
                handler = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                handler.start()
                self.handlers.append(handler)
        except BaseException as e:
            self.errors.append(e)
        finally:
            self.listener.close()

    def _serve(self, conn: socket.socket) -> None:
        grad = np.empty(self.state.flat.numel(), dtype=self.state.flat.numpy().dtype)
        out = np.empty_like(grad)
        header = bytearray(_HEADER.size)
        try:
            with conn:
                conn.settimeout(self.timeout)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while True:
                    (seen,) = _HEADER.unpack(_recv_into(conn, header))
                    if seen < 0:
                        return
                    _recv_into(conn, memoryview(grad).cast("B"))
                    with self.lock:
                        self.staleness.append(self.version - seen)
                        self.state.grad.copy_(torch.from_numpy(grad))
                        self.state.step(1.0)
                        self.version += 1
                        version = self.version
                        out[:] = self.state.flat.numpy()
                        if version % self.every == 0:
                            self._snapshot()
                    conn.sendall(_HEADER.pack(version))
                    conn.sendall(memoryview(out).cast("B"))
        except BaseException as e:
            self.errors.append(e)

    def _snapshot(self) -> None:
        seconds = time.perf_counter() - self.t0
        self.snapshots.append((self.version, seconds, self.state.flat.clone()))

    def join(self) -> None:
        """Wait for every replica to finish; the final parameters go to rank 0's replica."""
        # No timeout here: every socket has one, so a silent peer fails its handler instead.
        self.acceptor.join()
        for h in self.handlers:
            h.join()
        if self.errors:
            raise self.errors[0]
        with self.lock:
            if not self.snapshots or self.snapshots[-1][0] != self.version:
                self._snapshot()
            self.replica.set(self.state.flat)


def _recv_into(sock: socket.socket, buffer) -> memoryview:
    view = memoryview(buffer).cast("B")
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError("a parameter-server peer closed the connection")
        got += n
    return view


# ---------------------------------------------------------------- driver


@dataclass
class _Problem:
    engine: Engine
    ds: Dataset
    config: SGDConfig
    classes: np.ndarray


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
    state = 2 if config.optimizer == "adam" else int(config.momentum > 0)
    copies = 2 + state
    if config.strategy == "parameter-server":
        copies *= 2  # rank 0 also holds the server's replica
        copies += config.max_steps // config.eval_every + 1  # snapshots
    share = math.ceil(config.batch_size / workers)
    activations = 3 * share * (features + sum(config.widths) + classes)
    return int(itemsize * (copies * params + activations))


def fit(
    engine: Engine,
    ds: Dataset,
    config: SGDConfig,
    on_iteration: Callable[[int, float], None] | None = None,
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

    Notes
    -----
    A step processes B rows in all: O(B P / p) flops per worker for P parameters. What moves
    per step: driver-allreduce 2 P numbers per worker through the driver; ring-allreduce
    2 (p - 1) / p P per worker, peer to peer; local-sgd that every H steps; parameter-server
    2 P per worker per local step, all through rank 0. Each step is a trace span ``step``;
    gang strategies measure theirs inside the workers.
    """
    on_iteration = on_iteration or (lambda i, m: None)
    with engine.trace.span("init"):
        classes = _check(engine, ds, config)
    problem = _Problem(engine, ds, config, classes)
    if config.strategy == "driver-allreduce":
        result = _driver_allreduce(problem, on_iteration)
    else:
        result = _gang(problem, on_iteration)
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


def _gang(problem: _Problem, on_iteration) -> SGDResult:
    engine, ds, config = problem.engine, problem.ds, problem.config
    init = nn.utils.parameters_to_vector(
        build_model(ds.features, len(problem.classes), config, ds.dtype).parameters()
    )
    job = _GangJob(config, ds.rows, problem.classes, init.detach().numpy())
    with engine.trace.span("train"):
        outs = engine.gang(ds, _gang_member, job)
    # Per step, the split of the worker that took longest (the step's critical path).
    logs = [o["log"] for o in outs]
    steps = min(len(log) for log in logs)
    stacked = np.stack([log[:steps] for log in logs])  # (workers, steps, 4)
    slowest = stacked[stacked[:, :, 0].argmax(axis=0), np.arange(steps)]
    sent = step_bytes(config, ds.features, len(problem.classes), ds.dtype, engine.workers)
    for i, (wall, compute, comm, overhead) in enumerate(slowest):
        summary = {
            "compute": compute,
            "communication": comm,
            "overhead": overhead,
            "bytes_in": sent // 2,
            "bytes_out": sent - sent // 2,
            "tasks": engine.workers,
        }
        engine.trace.spans.append(Span(ITERATION, wall, measured=summary))
        on_iteration(i, float(i + 1))
    first = outs[0]
    target = first["target"] or (None, None)
    return SGDResult(
        first["params"],
        problem.classes.tolist(),
        first["steps"],
        first["accuracy"],
        first["history"],
        *target,
        train_seconds=first["seconds"],
        staleness=first.get("staleness"),
    )


def step_bytes(config: SGDConfig, features: int, classes: int, dtype: str, workers: int) -> int:
    """Bytes all workers together send and receive per step, from each strategy's algorithm."""
    size = count_parameters(features, classes, config) * np.dtype(dtype).itemsize
    p = workers
    if config.strategy == "driver-allreduce":  # parameters + batch rows down, gradients up
        return p * (size + 8 * config.batch_size) + p * size
    if config.strategy == "parameter-server":  # a gradient up and parameters down, each
        return 2 * p * size
    ring = 2 * 2 * (p - 1) * size  # each of p sends and receives 2 (p - 1) / p x size
    if config.strategy == "local-sgd":
        return ring // (config.sync_every or config.max_steps)
    return ring


# ---------------------------------------------------------------- reference and job contract


def reference(source: Source, config: SGDConfig, steps: int, dtype: str = "float64") -> nn.Module:
    """Single-process SGD in plain torch: the same model, initialisation and batches."""
    X, y = source.read(0, source.rows)
    classes = np.unique(y)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=dtype))
    yt = torch.from_numpy(np.searchsorted(classes, y).astype(np.int64))
    model = build_model(source.features, len(classes), config, dtype)
    optimizer = make_optimizer(model.parameters(), config)
    batches = GlobalBatches(source.rows, config.holdout, config.seed, config.batch_size)
    for t in range(steps):
        index = torch.from_numpy(batches(t))
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(Xt[index]), yt[index]).backward()
        optimizer.step()
    return model


def synthetic(rows: int, features: int, seed: int, config: SGDConfig) -> Classification:
    """The data ``scaling run/sweep sgd`` use without ``--data``."""
    return Classification(rows=rows, features=features, seed=seed)


def baseline(
    source: Source, config: SGDConfig, dtype: str = "float64"
) -> tuple[str, Callable[[int], object]]:
    """Plain single-process torch SGD (:func:`reference`), ``fit(n)`` taking n steps."""

    def fit(steps: int) -> nn.Module:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # COST is against one thread
        try:
            return reference(source, config, steps, dtype)
        finally:
            torch.set_num_threads(threads)

    return "torch, one process, 1 thread", fit


def rows_per_iteration(config: SGDConfig, rows: int) -> int:
    """Rows one step processes: the global batch."""
    return config.batch_size


def weak_config(config: SGDConfig, workers: int) -> SGDConfig:
    """Weak scaling keeps each worker's share of the batch: the global batch grows with p."""
    return replace(config, batch_size=config.batch_size * workers)


def explain(rows: int, features: int, workers: int, config: SGDConfig) -> list[Step]:
    """One step of ``config.strategy`` as the steps :func:`fit` runs (``scaling explain sgd``)."""
    P, B, p = count_parameters(features, 2, config), config.batch_size, workers
    flops = 6 * B * P / p  # forward 2 flops per weight per row, backward 4
    size = 8 * P
    driver = config.strategy == "driver-allreduce"
    grad = Step(
        "map",
        "_batch_grad" if driver else "Replica.grad_sum",
        f"each of {p} workers",
        f"forward and backward over ~{B // p} rows of the batch",
        flops,
        size if driver else 0,
    )
    if config.strategy == "driver-allreduce":
        return [
            grad,
            Step(
                "combine",
                "_add",
                f"workers, tree of depth {tree_depth(p)}",
                "add the gradients",
                P * tree_depth(p),
                size,
            ),
            Step(
                "update",
                "Replica.step",
                "driver",
                "optimiser step; ship parameters and the next batch's rows",
                4 * P,
                size + 8 * B,
            ),
        ]
    if config.strategy == "parameter-server":
        return [
            Step(
                "map",
                "Replica.grad_sum",
                f"each of {p} workers, no barrier",
                f"gradient of a local batch of ~{B // p} rows",
                flops,
                size,
            ),
            Step(
                "update",
                "_Server._serve",
                "server thread on rank 0",
                "apply each gradient as it arrives, send the parameters back",
                4 * P * p,
                size,
            ),
        ]
    ring = int(2 * (p - 1) / p * size)
    if config.strategy == "local-sgd":
        H = config.sync_every or config.max_steps
        return [
            Step(
                "map",
                "Replica.step",
                f"each of {p} workers",
                f"a local step on ~{B // p} own rows",
                flops + 4 * P,
                0,
            ),
            Step(
                "combine",
                "Group.allreduce",
                f"ring over {p} workers, every {H} steps",
                "sum the parameters (the bytes are per step: a round's over H)",
                P / H,
                ring // H,
            ),
            Step(
                "update", "_local_sgd", f"each of {p} workers", "divide by p: the average", P / H, 0
            ),
        ]
    return [
        grad,
        Step(
            "combine",
            "Group.allreduce",
            f"ring over {p} workers",
            f"all-reduce gradient buckets of {config.bucket_mb:g} MB during backward",
            P,
            ring,
        ),
        Step("update", "Replica.step", f"each of {p} workers", "the same optimiser step", 4 * P, 0),
    ]


EXPLAIN_NOTE = (
    "Compute per step is ~6 B P / p flops; communication is P numbers whatever B, so larger "
    "batches and models with more work per parameter scale better. The driver round trip "
    "costs two engine latencies per step; the ring none; local SGD divides the bytes by H; "
    "a parameter server funnels p P numbers per step through one process."
)


def quality(result: SGDResult) -> dict:
    """What a run record reports about the training."""
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


def arrays(result: SGDResult) -> dict[str, np.ndarray]:
    """What a run saves beside its record: the flat parameter vector."""
    return {"params": result.params}
