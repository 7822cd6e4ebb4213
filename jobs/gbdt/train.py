"""Training boosted trees in one gang: the members, the driver around them, the reference.

Each member trains with the library's collective (:mod:`scaling.collectives.xgboost` or
:mod:`scaling.collectives.lightgbm`) and measures itself: each round's wall time (the library's
per-round callback), the bytes its sockets moved from the end of the first round to the end of
the last (the kernel's counters; the first round also carries the set-up), and, at 2 or more
workers, each round's compute, timed by training the same rounds once more on its own rows
without the network. A round's communication is its wall time less that compute: the
libraries' collectives run in their C++ code, out of reach of a timer around them.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from xgboost.core import DataSplitMode

from jobs.common import label_classes
from jobs.gbdt.config import (
    ITERATION,
    GBDTConfig,
    GBDTResult,
    lightgbm_params,
    memory_needed,
    xgboost_params,
)
from jobs.gbdt.steps import round_bytes
from scaling.collectives import Backend, lightgbm_cli, run_gang
from scaling.collectives.lightgbm import LightGBMBackend
from scaling.collectives.tcp import allgather, alltoall
from scaling.collectives.xgboost import XGBoostBackend
from scaling.data import Part, Source, held_out
from scaling.engines import Dataset, Engine
from scaling.engines.worker import GangContext, pin_threads
from scaling.errors import DataError, UsageError
from scaling.job import OnIteration
from scaling.measure.trace import StepLog
from scaling.run.checkpoint import Checkpoints, note_resumed

Resumed = tuple[int, bytes] | None
"""A checkpoint to train on from: (rounds done, the model's bytes)."""

_QUIET = logging.getLogger("scaling.lightgbm")
_QUIET.setLevel(logging.ERROR)
SPLIT = (
    "each round's wall time inside the workers; its compute by training the same rounds on the "
    "worker's own rows without the network; communication the difference"
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _GangBrief:
    """What every member gets: the config, the data's shape, and where the run's checkpoints
    are (None: the gang starts from round 0 every time)."""

    config: GBDTConfig
    rows: int
    features: int
    checkpoints: Checkpoints | None = None


@dataclasses.dataclass(kw_only=True)
class _Rows:
    """A member's rows: features, labels, global row numbers, and which are for training."""

    X: np.ndarray
    y: np.ndarray
    index: np.ndarray
    train: np.ndarray

    @classmethod
    def of(cls, parts: list[Part], holdout: float, seed: int) -> _Rows:
        X = parts[0].X if len(parts) == 1 else np.concatenate([p.X for p in parts])
        y = np.concatenate([p.y for p in parts]).astype(np.float64)
        index = np.concatenate([np.arange(p.start, p.stop) for p in parts])
        held = np.concatenate([held_out(seed, p.start, p.stop, holdout) for p in parts])
        return cls(X=X, y=y, index=index, train=~held)


class _RoundClock(xgb.callback.TrainingCallback):
    """The time each boosting round ends (an XGBoost callback; ``tick`` is LightGBM's), and
    the member's socket bytes from the end of its first round to the end of the last; with
    ``save``, ``save(rounds done, booster)`` after each round (rank 0's checkpoints)."""

    def __init__(self, rounds: int, log: StepLog | None = None, save=None) -> None:
        super().__init__()
        self.times = [time.time()]  # the wall clock: round ends go on the run's timeline
        self.last, self.log, self.save = rounds, log, save

    def tick(self, env=None) -> None:
        self.times.append(time.time())
        if self.log is not None and len(self.times) == 2:
            self.log.open(done=1)  # set-up (the library's first exchanges) is in round 1
        if self.log is not None and len(self.times) == self.last + 1:
            self.log.close()
        if self.save is not None and env is not None:
            self.save(env.iteration + 1, env.model)

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        self.tick()
        if self.save is not None:
            self.save(epoch + 1, model)  # epochs count on from a model trained on
        return False  # do not stop

    @property
    def rounds(self) -> np.ndarray:
        return np.diff(self.times)


def member(ctx: GangContext, parts: list[Part], backend: Backend, started, job: _GangBrief) -> dict:
    """One gang member: (feature mode: get all rows of its columns), train from the latest
    checkpoint or from the start, score held-out."""
    pin_threads()
    config = job.config
    rows = _Rows.of(parts, config.holdout, config.seed)
    start = time.time()
    replica = 0
    if config.mode == "feature":
        replicate = _replicate if config.library == "xgboost" else _replicate_all
        rows, replica = replicate(ctx, rows, job)
    train = _xgboost if config.library == "xgboost" else _lightgbm
    checkpoints = job.checkpoints if resumable(config) else None
    resumed = checkpoints.latest() if checkpoints else None
    done = resumed[0] if resumed else 0
    save = None
    if checkpoints and ctx.rank == 0:  # rank 0's model is every member's
        save = functools.partial(_checkpoint, checkpoints, config.rounds)
    log = StepLog(ctx.rank)  # before joining: the sockets open now are not the collective's
    with backend.member(ctx, started, config.timeout) as network:
        clock = _RoundClock(config.rounds - done, log, save)
        booster = train(rows, config, network, clock, resumed)
        trained_at = clock.times[-1]
        predictions = _predict(booster, rows, config)
    walls = clock.rounds
    compute = walls
    if ctx.world > 1:  # the same rounds on this member's rows alone: the compute in a round
        alone = _RoundClock(config.rounds - done)
        train(_own_columns(ctx, rows, config), config, None, alone, resumed)
        compute = np.minimum(alone.rounds, walls)
    for wall, busy, end in zip(walls, compute, clock.times[1:], strict=True):
        log.add(wall, busy, wall - busy, end=end)
    held = ~rows.train
    return {
        "log": log.result(),
        "predictions": predictions,
        "model": _model_bytes(booster) if ctx.rank == 0 else b"",
        # from the replica (feature mode) or the library's matrix to the last tree
        "train_seconds": trained_at - start,
        "rows": rows.index[held],
        "labels": rows.y[held],
        "replica_bytes": replica,
        "resumed_from": done,
    }


def resumable(config: GBDTConfig) -> bool:
    """Whether a gang of ``config`` can go on from a checkpoint: data and voting modes (the
    libraries train on from a model); feature mode starts again from round 0."""
    return config.mode != "feature"


def _checkpoint(checkpoints: Checkpoints, rounds: int, done: int, booster) -> None:
    if done % checkpoints.every == 0 and done < rounds:
        checkpoints.save(done, _model_bytes(booster))


def _own_columns(ctx: GangContext, rows: _Rows, config: GBDTConfig) -> _Rows:
    """The rows as this member's share of the work: LightGBM's feature-parallel member holds
    every column but searches splits in its block of them only (an even block here; LightGBM
    balances the blocks by bins)."""
    if (config.library, config.mode) != ("lightgbm", "feature"):
        return rows
    cols = np.array_split(np.arange(rows.X.shape[1]), ctx.world)[ctx.rank]
    return _Rows(X=rows.X[:, cols], y=rows.y, index=rows.index, train=rows.train)


def _replicate(ctx: GangContext, rows: _Rows, job: _GangBrief) -> tuple[_Rows, int]:
    """All rows of this member's block of columns (an all-to-all); and the bytes it received.

    Notes
    -----
    Each member sends (p - 1) / p of its rows' values and receives the same from the others:
    n F / p values per member afterwards, every row of its F / p columns.
    """
    blocks = np.array_split(np.arange(job.features), ctx.world)
    sent = [(rows.X[:, cols], rows.y, rows.index, rows.train) for cols in blocks]
    got = alltoall(ctx, sent, timeout=job.config.timeout)
    index = np.concatenate([g[2] for g in got])
    order = np.argsort(index, kind="stable")  # global row order, as single-node training sees
    received = sum(g[0].nbytes for r, g in enumerate(got) if r != ctx.rank)
    return (
        _Rows(
            X=np.concatenate([g[0] for g in got])[order],
            y=np.concatenate([g[1] for g in got])[order],
            index=index[order],
            train=np.concatenate([g[3] for g in got])[order],
        ),
        received,
    )


def _replicate_all(ctx: GangContext, rows: _Rows, job: _GangBrief) -> tuple[_Rows, int]:
    """Every row, on every member (an all-gather, for LightGBM's feature-parallel learner);
    and the bytes this member received: (p - 1) / p of the n F values."""
    got = allgather(ctx, (rows.X, rows.y, rows.index, rows.train), timeout=job.config.timeout)
    index = np.concatenate([g[2] for g in got])
    order = np.argsort(index, kind="stable")
    received = sum(g[0].nbytes for r, g in enumerate(got) if r != ctx.rank)
    X, y, index, train = (np.concatenate([g[i] for g in got])[order] for i in range(4))
    return _Rows(X=X, y=y, index=index, train=train), received


def _split_mode(config: GBDTConfig, network) -> DataSplitMode:
    """Column split in feature mode, inside the collective (``network`` is None alone)."""
    if config.mode == "feature" and network is not None:
        return DataSplitMode.COL
    return DataSplitMode.ROW


def _xgboost(
    rows: _Rows, config: GBDTConfig, network, clock: _RoundClock, resumed: Resumed = None
) -> xgb.Booster:
    """Train with XGBoost: inside its communicator when ``network`` (else alone); the rounds
    after a checkpoint's ``(rounds done, model)`` when ``resumed``."""
    split = _split_mode(config, network)
    dtrain = xgb.DMatrix(rows.X[rows.train], rows.y[rows.train], data_split_mode=split, nthread=1)
    done, model = (0, None) if resumed is None else (resumed[0], bytearray(resumed[1]))
    clock.times[0] = time.time()
    return xgb.train(
        xgboost_params(config),
        dtrain,
        config.rounds - done,
        xgb_model=None if model is None else xgb.Booster(model_file=model),
        callbacks=[clock],
    )


def _lightgbm(
    rows: _Rows, config: GBDTConfig, network, clock: _RoundClock, resumed: Resumed = None
) -> lgb.Booster:
    """Train with LightGBM: over its socket network when ``network`` has machines; the rounds
    after a checkpoint's ``(rounds done, model)`` when ``resumed``."""
    lgb.register_logger(_QUIET)  # its network's per-connection messages would fill the console
    params = lightgbm_params(config)
    if network and config.mode == "feature":
        return _lightgbm_program(rows, params, config, network, clock)
    if network:
        params.update(tree_learner=config.mode, **network)
    done, model = (0, None) if resumed is None else resumed
    return lgb.train(
        params,
        lgb.Dataset(rows.X[rows.train], rows.y[rows.train], params=params),
        config.rounds - done,
        init_model=None if model is None else lgb.Booster(model_str=model.decode()),
        callbacks=[clock.tick],
    )


def _lightgbm_program(
    rows: _Rows, params: dict, config: GBDTConfig, network: dict, clock: _RoundClock
) -> lgb.Booster:
    """Train feature-parallel with LightGBM's command-line program (its library cannot):
    the training rows as its binary dataset, made by the library from the same parameters
    (the same bins as single-node training), then its model loaded back."""
    with tempfile.TemporaryDirectory(prefix="scaling-lightgbm-") as tmp:
        data, model = Path(tmp) / "train.bin", Path(tmp) / "model.txt"
        lgb.Dataset(rows.X[rows.train], rows.y[rows.train], params=params).save_binary(data)
        params = {k: v for k, v in params.items() if k != "verbose"}
        params.update(tree_learner="feature", num_iterations=config.rounds, **network)
        # LightGBM 4.7's feature-parallel learner keeps, at feature_fraction = 1, only the
        # machine's own features of tree 1 for tree 2 on (its column sampler resets nothing),
        # so later trees lose features. A fraction under 1 that still rounds to every feature
        # makes it reset each tree to all of them: trees equal to single-node training's.
        params["feature_fraction"] = repr(1 - 1 / (4 * rows.X.shape[1]))
        if clock.log is not None:  # its sockets are the program's: bytes are modelled
            clock.log.uncounted = True
        clock.times[0] = time.time()
        lightgbm_cli.train(params, data, model, config.timeout, clock.tick)
        return lgb.Booster(model_file=str(model))


def _predict(booster, rows: _Rows, config: GBDTConfig) -> np.ndarray:
    """Predictions for this member's held-out rows (feature mode: all of them, together)."""
    held = rows.X[~rows.train]
    if isinstance(booster, lgb.Booster):
        return booster.predict(held, num_threads=1)
    if config.mode == "feature":  # each member holds some columns: predict together
        return booster.predict(xgb.DMatrix(held, data_split_mode=DataSplitMode.COL, nthread=1))
    return booster.inplace_predict(held)


def _model_bytes(booster) -> bytes:
    if isinstance(booster, lgb.Booster):
        return booster.model_to_string().encode()
    return bytes(booster.save_raw())


# ---------------------------------------------------------------- driver


def _check(engine: Engine, ds: Dataset, config: GBDTConfig) -> None:
    if not ds.labelled:
        raise DataError(
            "gbdt trains a classifier and needs labels: pass --label COLUMN with --data"
        )
    if ds.partitions < engine.workers:
        raise UsageError(
            f"{ds.partitions} partitions for {engine.workers} workers: every worker needs rows; "
            f"use --partitions >= {engine.workers}"
        )
    classes = label_classes(engine, ds)
    if classes.tolist() not in ([0, 1], [0.0, 1.0]):
        if len(classes) == 1:
            raise DataError(
                f"the labels hold one class only ({classes[0]:g}); boosting a binary "
                "classifier needs rows of both classes, 0 and 1"
            )
        raise DataError(
            f"gbdt trains a binary classifier on labels 0 and 1; these labels are "
            f"{classes[:5].tolist()}{'...' if len(classes) > 5 else ''}: map them to 0/1"
        )
    # LightGBM's feature-parallel learner holds every row on every worker
    share = 1 if (config.library, config.mode) == ("lightgbm", "feature") else engine.workers
    need = memory_needed(ds.rows, ds.features, ds.dtype, share)
    if need > engine.worker_memory:
        raise UsageError(
            f"training needs ~{need / 2**30:.1f} GiB per worker but a worker has "
            f"~{engine.worker_memory / 2**30:.1f} GiB; use more workers or fewer rows"
        )


def fit(
    engine: Engine,
    ds: Dataset,
    config: GBDTConfig,
    on_iteration: OnIteration | None = None,
    checkpoints: Checkpoints | None = None,
) -> GBDTResult:
    """Train boosted trees of ``config`` on a labelled dataset cached on ``engine``.

    Parameters
    ----------
    engine, ds : Engine, Dataset
        Where the rows are (``engine.load(source)`` with 0/1 labels).
    config : GBDTConfig
        Library, mode, rounds and tree shape.
    on_iteration : callable, optional
        ``on_iteration(round, rounds_done)`` per round, after training (the rounds run in one
        gang call).
    checkpoints : Checkpoints, optional
        Where rank 0 keeps the model every ``checkpoints.every`` rounds, and a gang that starts
        again goes on from (data and voting modes).

    Notes
    -----
    A round costs O(n F / p) per worker to build histograms (data, voting: its n / p rows;
    feature: all n rows of its F / p columns) plus O(F B) per node to scan them. What moves
    per tree (:func:`~jobs.gbdt.steps.round_bytes`): data-parallel ~ nodes x F B histogram bins,
    all-reduced (XGBoost) or reduce-scattered (LightGBM, ~ half); voting ~ nodes x 2k B
    bins; feature ~ depth x n / 8 bytes of row decisions plus best splits, after a one-time
    replica of n F (p - 1) / p values per worker. Each round is a trace span ``round``,
    measured inside the workers (see the module's docstring).
    """
    with engine.trace.span("init"):
        _check(engine, ds, config)
        if config.library == "lightgbm" and config.mode == "feature" and engine.workers > 1:
            lightgbm_cli.program()  # built once, here: a build inside the gang would time out
    return train(engine, ds, config, member, on_iteration=on_iteration, checkpoints=checkpoints)


def train(
    engine: Engine,
    ds: Dataset,
    config: GBDTConfig,
    member: Callable,
    *args,
    on_iteration: OnIteration | None = None,
    checkpoints: Checkpoints | None = None,
) -> GBDTResult:
    """Run ``member(ctx, parts, backend, started, job, *args)`` as the gang with the library's
    backend (:func:`member`, or a stand-in that fails on purpose); gather what it measured."""
    from sklearn.metrics import log_loss, roc_auc_score

    backend = XGBoostBackend() if config.library == "xgboost" else LightGBMBackend()
    job = _GangBrief(config=config, rows=ds.rows, features=ds.features, checkpoints=checkpoints)
    t0 = time.perf_counter()
    failed_before = len(engine.trace.failures)
    outs = run_gang(engine, ds, backend, member, job, *args, timeout=config.timeout)
    seconds = time.perf_counter() - t0
    done = outs[0]["resumed_from"]  # rounds the last start of the gang did not train
    if done:
        note_resumed(engine.trace.failures, failed_before, done)
    expected = round_bytes(config, ds.rows, ds.features, engine.workers)
    spans = engine.trace.add_measured(ITERATION, [o["log"] for o in outs], expected, SPLIT)
    for i in range(done, done + len(spans)):
        if on_iteration is not None:
            on_iteration(i, float(i + 1))
    # Feature mode: every member scored every held-out row; otherwise each scored its own.
    scored = outs[:1] if config.mode == "feature" else outs
    rows = np.concatenate([o["rows"] for o in scored])
    order = np.argsort(rows)
    predictions = np.concatenate([o["predictions"] for o in scored])[order].astype(np.float64)
    labels = np.concatenate([o["labels"] for o in scored])[order]
    return GBDTResult(
        predictions=predictions,
        labels=labels,
        rows=rows[order],
        logloss=float(log_loss(labels, predictions, labels=[0, 1])),
        auc=float(roc_auc_score(labels, predictions)) if len(np.unique(labels)) == 2 else math.nan,
        rounds=done + len(spans),
        train_seconds=max(o["train_seconds"] for o in outs),
        gang_seconds=seconds,
        model=outs[0]["model"],
        replica_bytes=sum(o["replica_bytes"] for o in outs),
    )


# ---------------------------------------------------------------- reference


def reference(source: Source, config: GBDTConfig, rounds: int | None = None) -> np.ndarray:
    """Single-node training with the library (one thread) on the same training rows; its
    held-out predictions, in global row order."""
    return reference_trainer(source, config)(config.rounds if rounds is None else rounds)


def reference_trainer(source: Source, config: GBDTConfig) -> Callable[[int], np.ndarray]:
    """:func:`reference` with the rows read and binned once: ``train(rounds)`` trains a fresh
    booster and predicts the held-out rows (what COST times, with no reading in it)."""
    X, y = source.read(0, source.rows)
    train = ~held_out(config.seed, 0, source.rows, config.holdout)
    test = X[~train]
    if config.library == "xgboost":
        params = xgboost_params(config)
        dtrain = xgb.DMatrix(X[train], y[train], nthread=1)
        return lambda rounds: (
            xgb.train(params, dtrain, rounds).inplace_predict(test).astype(np.float64)
        )

    params = lightgbm_params(config)
    dtrain = lgb.Dataset(X[train], y[train], params=params)
    return lambda rounds: lgb.train(params, dtrain, rounds).predict(test, num_threads=1)
