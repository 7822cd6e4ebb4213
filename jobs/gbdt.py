"""Gradient-boosted trees with XGBoost and LightGBM, data-, feature- and voting-parallel.

Run it (one line each)::

    scaling run gbdt --engine local --rows 100000 --features 28
    scaling run gbdt --engine dask  --workers 1,2 --library xgboost --mode data
    scaling run gbdt --engine ray   --workers 2 --library xgboost --mode feature
    scaling run gbdt --engine spark --workers 2 --library lightgbm --mode voting --top-k 8

One gang call (:func:`_member` on every worker at once) trains the whole model with the
library's own collective; the engine only places the members next to their rows and gives them
a rendezvous. A boosting round grows one tree: per tree node, each worker builds gradient
histograms (features x bins) of its rows, the workers agree on the best split, and every
worker applies it to its rows. The modes differ in what is split and what is exchanged:

- ``data`` (rows split across workers; XGBoost ``hist`` and LightGBM ``tree_learner=data``):
  histograms are summed across workers. XGBoost all-reduces each node's histogram
  (its tracker runs on the driver, :func:`_start_tracker`, its collective on the workers);
  LightGBM reduce-scatters them, so that each worker owns the merged histograms of 1/p of the
  features, finds the best split among them, and the workers all-gather their best splits.
- ``feature`` (columns split across workers; XGBoost ``DataSplitMode.COL``): every worker
  first gets all rows of its columns (:func:`_replicate`, one all-to-all); per node each
  finds the best split among its columns, the best of those is agreed on, and its owner's
  left/right decision for every row is shared (a bit per row per level). The model equals
  single-node training exactly.
- ``voting`` (LightGBM ``tree_learner=voting``, rows split): each worker votes for its local
  top-k features per leaf; only the histograms of the 2k most voted features are merged
  (Meng et al., "A Communication-Efficient Parallel Algorithm for Decision Tree", 2016).

LightGBM's own feature-parallel learner cannot be used from its library (its C API, which the
Python package, ``lightgbm.dask`` and Spark's SynapseML all use, rejects
``tree_learner=feature``); only its command-line program has it. ``--library lightgbm --mode
feature`` says so; XGBoost's column split is this project's feature-parallel mode.

A fraction ``holdout`` of the rows (chosen per global row from the seed, so the same at any
number of workers) is held out and scored after training: log-loss and AUC.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from xgboost import collective
from xgboost.core import DataSplitMode
from xgboost.tracker import RabitTracker

from jobs.common import label_classes
from scaling.collective import allgather, alltoall, own_address
from scaling.data import Classification, Part, Source, held_out
from scaling.engines import Dataset, Engine
from scaling.engines.base import GangContext, pin_threads
from scaling.errors import DataError, UsageError, check_choice, check_count
from scaling.explain import Step
from scaling.trace import Span

NAME = "gbdt"
ITERATION = "round"
"""Trace span of one boosting round: one tree."""
LIBRARIES = ("xgboost", "lightgbm")
MODES = ("data", "feature", "voting")
HIST_ENTRY = 16
"""Bytes of one histogram bin: a (gradient, hessian) pair of float64, in both libraries."""
SPLIT_INFO = 64
"""Bytes of one best-split record exchanged between workers (feature, threshold, gain, sums)."""
XGBOOST_COL_SPLIT_UNTIL = (3, 4)
"""XGBoost 3.4 removed column-split training: feature-parallel needs an older one."""


def _xgboost_version() -> tuple[int, ...]:
    return tuple(int(x) for x in xgb.__version__.split(".")[:2] if x.isdigit())


@dataclass(frozen=True)
class GBDTConfig:
    """Validated settings of a boosted-trees run.

    ``max_depth`` bounds XGBoost's depth-wise trees; ``num_leaves`` LightGBM's leaf-wise ones.
    ``max_bin``: histogram bins per feature. ``top_k``: features each worker votes for
    (voting). ``timeout``: seconds the gang, and any collective inside it, may wait for a
    member before the run fails.
    """

    library: str = "xgboost"
    mode: str = "data"
    rounds: int = 50
    max_depth: int = 6
    num_leaves: int = 31
    max_bin: int = 255
    learning_rate: float = 0.1
    top_k: int = 20
    holdout: float = 0.2
    timeout: float = 300.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("library", self.library, LIBRARIES)
        check_choice("mode", self.mode, MODES)
        if self.library == "xgboost" and self.mode == "voting":
            raise UsageError(
                "XGBoost has no voting-parallel mode; use --library lightgbm --mode voting, "
                "or --mode data|feature with XGBoost"
            )
        if self.library == "lightgbm" and self.mode == "feature":
            raise UsageError(
                "LightGBM's feature-parallel learner is not available from its library: the C "
                "API behind the Python package rejects tree_learner=feature (only the LightGBM "
                "command-line program has it). Use --library xgboost --mode feature (column "
                "split), or --library lightgbm --mode data|voting"
            )
        if (self.library, self.mode) == ("xgboost", "feature") and (
            _xgboost_version() >= XGBOOST_COL_SPLIT_UNTIL
        ):
            raise UsageError(
                f"XGBoost {xgb.__version__} has no column-split training "
                "(removed in 3.4), which feature-parallel needs; install an older one: "
                "pip install 'xgboost-cpu<3.4'"
            )
        for name in ("rounds", "max_depth", "top_k"):
            check_count(name, getattr(self, name))
        for name in ("num_leaves", "max_bin"):
            check_count(name, getattr(self, name), minimum=2)
        if not self.learning_rate > 0 or not self.timeout > 0:
            raise UsageError("learning_rate and timeout must be > 0")
        if not 0 < self.holdout < 1:
            raise UsageError("holdout must be in (0, 1): quality is measured on held-out rows")

    @property
    def max_iter(self) -> int:  # what the runner's progress bar counts
        return self.rounds


CONFIG = GBDTConfig
DEMO_CONFIG = GBDTConfig(rounds=20)
"""What ``scaling demo`` runs: 20 rounds of data-parallel XGBoost, depth 6."""


@dataclass
class GBDTResult:
    """Held-out predictions (probabilities, by global row), their quality, and the model.

    ``train_seconds``: the slowest member's time from its first step of training (the
    replica in feature mode, else the library's matrix) to its last tree; ``gang_seconds``:
    the whole gang call, held-out scoring included.
    """

    predictions: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    logloss: float
    auc: float
    rounds: int
    train_seconds: float
    gang_seconds: float
    model: bytes = field(repr=False, default=b"")
    replica_bytes: int = 0


# ---------------------------------------------------------------- the libraries' parameters


def xgboost_params(config: GBDTConfig) -> dict:
    """XGBoost ``hist`` parameters of ``config``, one thread."""
    return {
        "tree_method": "hist",
        "objective": "binary:logistic",
        "max_depth": config.max_depth,
        "max_bin": config.max_bin,
        "eta": config.learning_rate,
        "nthread": 1,
        "seed": config.seed,
    }


def lightgbm_params(config: GBDTConfig) -> dict:
    """LightGBM parameters of ``config`` for one machine, one thread."""
    return {
        "objective": "binary",
        "num_leaves": config.num_leaves,
        "max_bin": config.max_bin,
        "learning_rate": config.learning_rate,
        "top_k": config.top_k,
        "num_threads": 1,
        "seed": config.seed,
        "deterministic": True,
        "verbose": -1,
    }


# ---------------------------------------------------------------- worker side

_QUIET = logging.getLogger("scaling.lightgbm")
_QUIET.setLevel(logging.ERROR)


@dataclass(frozen=True)
class _GangJob:
    """What every member gets: the config, the data's shape, and the XGBoost tracker."""

    config: GBDTConfig
    rows: int
    features: int
    tracker: dict | None


@dataclass
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
        return cls(X, y, index, ~held)


class _RoundClock(xgb.callback.TrainingCallback):
    """The time each boosting round ends: an XGBoost callback, and (``tick``) LightGBM's."""

    def __init__(self) -> None:
        super().__init__()
        self.times = [time.perf_counter()]

    def tick(self, *args) -> None:
        self.times.append(time.perf_counter())

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        self.tick()
        return False  # do not stop

    @property
    def rounds(self) -> np.ndarray:
        return np.diff(self.times)


def _member(ctx: GangContext, parts: list[Part], job: _GangJob) -> dict:
    """One gang member: (feature mode: get all rows of its columns), train, score held-out."""
    pin_threads()
    config = job.config
    rows = _Rows.of(parts, config.holdout, config.seed)
    start = time.perf_counter()
    replica = 0
    if config.mode == "feature":
        rows, replica = _replicate(ctx, rows, job)
    train = _xgboost if config.library == "xgboost" else _lightgbm
    out = train(ctx, rows, job)
    held = ~rows.train
    trained_at = out.pop("trained_at")
    return {
        **out,
        # from the replica (feature mode) or the library's matrix to the last tree
        "train_seconds": trained_at - start,
        "rows": rows.index[held],
        "labels": rows.y[held],
        "replica_bytes": replica,
    }


def _replicate(ctx: GangContext, rows: _Rows, job: _GangJob) -> tuple[_Rows, int]:
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
            np.concatenate([g[0] for g in got])[order],
            np.concatenate([g[1] for g in got])[order],
            index[order],
            np.concatenate([g[3] for g in got])[order],
        ),
        received,
    )


def _xgboost(ctx: GangContext, rows: _Rows, job: _GangJob) -> dict:
    """Train with XGBoost's collective (tracker on the driver); score the held-out rows."""
    config = job.config
    split = DataSplitMode.COL if config.mode == "feature" else DataSplitMode.ROW
    clock = _RoundClock()
    held = ~rows.train
    # Task ids fix the ranks (the tracker sorts them as strings: zero-padded).
    with collective.CommunicatorContext(
        **job.tracker, dmlc_task_id=f"{ctx.rank:06d}", dmlc_timeout=int(config.timeout)
    ):
        dtrain = xgb.DMatrix(
            rows.X[rows.train], rows.y[rows.train], data_split_mode=split, nthread=1
        )
        clock.times[0] = time.perf_counter()
        booster = xgb.train(xgboost_params(config), dtrain, config.rounds, callbacks=[clock])
        if split == DataSplitMode.COL:  # each member holds some columns: predict together
            predictions = booster.predict(
                xgb.DMatrix(rows.X[held], data_split_mode=split, nthread=1)
            )
        else:
            predictions = booster.inplace_predict(rows.X[held])
    return {
        "round_seconds": clock.rounds,
        "trained_at": clock.times[-1],
        "predictions": predictions,
        "model": bytes(booster.save_raw()) if ctx.rank == 0 else b"",
    }


def _lightgbm(ctx: GangContext, rows: _Rows, job: _GangJob) -> dict:
    """Train with LightGBM's socket network (set up here); score the held-out rows."""

    config = job.config
    lgb.register_logger(_QUIET)  # its network's per-connection messages would fill the console
    params = lightgbm_params(config)
    if ctx.world > 1:
        params.update(
            tree_learner=config.mode,
            num_machines=ctx.world,
            pre_partition=True,  # each member's rows are its share: do not re-partition
            time_out=max(1, math.ceil(config.timeout / 60)),  # minutes
            **_lightgbm_network(ctx, config.timeout),
        )
    clock = _RoundClock()
    try:
        booster = lgb.train(
            params,
            lgb.Dataset(rows.X[rows.train], rows.y[rows.train], params=params),
            config.rounds,
            callbacks=[clock.tick],
        )
    finally:
        if ctx.world > 1:  # release the listening port even when training failed
            lgb.basic._LIB.LGBM_NetworkFree()
    return {
        "round_seconds": clock.rounds,
        "trained_at": clock.times[-1],
        "predictions": booster.predict(rows.X[~rows.train], num_threads=1),
        "model": booster.model_to_string().encode() if ctx.rank == 0 else b"",
    }


def _lightgbm_network(ctx: GangContext, timeout: float, attempts: int = 3) -> dict:
    """LightGBM's machine list: a free port on each member, all-gathered.

    Each member holds its port while the list is gathered, then checks that it can still
    bind it; if any member cannot (another process took it meanwhile), all try new ports.
    """
    host = own_address(ctx.host)
    for _ in range(attempts):
        with socket.socket() as held:
            held.bind((host, 0))
            port = held.getsockname()[1]
            machines = allgather(ctx, f"{host}:{port}", timeout)
        if all(allgather(ctx, _can_bind(host, port), timeout)):
            return {"machines": ",".join(machines), "local_listen_port": port}
    raise RuntimeError(f"could not find {ctx.world} free ports for LightGBM in {attempts} tries")


def _can_bind(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------- driver


def _start_tracker(engine: Engine, config: GBDTConfig):
    """XGBoost's tracker on the driver: the members meet there to form their ring."""
    tracker = RabitTracker(
        n_workers=engine.workers,
        host_ip=engine.rendezvous_host,
        port=0,
        sortby="task",
        timeout=int(config.timeout),
    )
    tracker.start()
    return tracker


def _stop_tracker(tracker: RabitTracker) -> None:
    """Free the tracker's port and thread. After a failed gang the tracker has failed too
    (a member never came, or left); that error says less than the gang's, which is raised."""
    with contextlib.suppress(xgb.core.XGBoostError):
        tracker.free()


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
        raise DataError(
            f"gbdt trains a binary classifier on labels 0 and 1; these labels are "
            f"{classes[:5].tolist()}{'...' if len(classes) > 5 else ''}: map them to 0/1"
        )
    need = memory_needed(ds.rows, ds.features, ds.dtype, engine.workers)
    if need > engine.worker_memory:
        raise UsageError(
            f"training needs ~{need / 2**30:.1f} GiB per worker but a worker has "
            f"~{engine.worker_memory / 2**30:.1f} GiB; use more workers or fewer rows"
        )


def memory_needed(rows: int, features: int, dtype: str, workers: int) -> int:
    """Bytes a worker needs for its n F / p values (its rows, or in feature mode all rows of
    its columns): the cached partitions, the training copy and the library's matrix (~8 bytes
    per value as XGBoost's CSR entries, 1 per binned value)."""
    values = rows * features / workers
    return int(values * (2 * np.dtype(dtype).itemsize + 9))


def fit(
    engine: Engine,
    ds: Dataset,
    config: GBDTConfig,
    on_iteration: Callable[[int, float], None] | None = None,
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

    Notes
    -----
    A round costs O(n F / p) per worker to build histograms (data, voting: its n / p rows;
    feature: all n rows of its F / p columns) plus O(F B) per node to scan them. What moves
    per tree (:func:`round_bytes`): data-parallel ~ nodes x F B histogram bins, all-reduced
    (XGBoost) or reduce-scattered (LightGBM, ~ half); voting ~ nodes x 2k B bins; feature
    ~ depth x n / 8 bytes of row decisions plus best splits, after a one-time replica of
    n F (p - 1) / p values per worker. Rounds are timed whole inside the workers (the
    libraries' collectives run in their C++ code, so compute here includes them); each is
    a trace span ``round`` with its predicted bytes.
    """
    with engine.trace.span("init"):
        _check(engine, ds, config)
    return _train(engine, ds, config, _member, on_iteration or (lambda i, m: None))


def _train(engine: Engine, ds: Dataset, config: GBDTConfig, member: Callable, on_iteration):
    """Run ``member`` as the gang (tracker around it for XGBoost); gather what it measured."""
    from sklearn.metrics import log_loss, roc_auc_score

    tracker = _start_tracker(engine, config) if config.library == "xgboost" else None
    job = _GangJob(config, ds.rows, ds.features, tracker and tracker.worker_args())
    try:
        t0 = time.perf_counter()
        outs = engine.gang(ds, member, job, timeout=config.timeout)
        seconds = time.perf_counter() - t0
        if tracker is not None:
            tracker.wait_for(int(config.timeout))
    finally:
        if tracker is not None:
            _stop_tracker(tracker)
    # Per round, the member that took longest (the round's critical path).
    rounds = np.max([o["round_seconds"] for o in outs], axis=0)
    sent = round_bytes(config, ds.rows, ds.features, engine.workers)
    for i, wall in enumerate(rounds):
        summary = {
            "compute": float(wall),
            "communication": 0.0,
            "overhead": 0.0,
            "bytes_in": sent // 2,
            "bytes_out": sent - sent // 2,
            "tasks": engine.workers,
        }
        engine.trace.spans.append(Span(ITERATION, float(wall), measured=summary))
        on_iteration(i, float(i + 1))
    # Feature mode: every member scored every held-out row; otherwise each scored its own.
    scored = outs[:1] if config.mode == "feature" else outs
    rows = np.concatenate([o["rows"] for o in scored])
    order = np.argsort(rows)
    predictions = np.concatenate([o["predictions"] for o in scored])[order].astype(np.float64)
    labels = np.concatenate([o["labels"] for o in scored])[order]
    return GBDTResult(
        predictions,
        labels,
        rows[order],
        float(log_loss(labels, predictions, labels=[0, 1])),
        float(roc_auc_score(labels, predictions)) if len(np.unique(labels)) == 2 else math.nan,
        len(rounds),
        max(o["train_seconds"] for o in outs),
        seconds,
        outs[0]["model"],
        sum(o["replica_bytes"] for o in outs),
    )


def histograms_per_tree(config: GBDTConfig) -> int:
    """Histograms built (and exchanged) per tree; the sibling of each is by subtraction.

    XGBoost grows depth-wise: the root, then the smaller child of each node on levels
    1 .. depth - 1: 2^(depth - 1). LightGBM grows leaf-wise: the root, then one per split.
    """
    if config.library == "xgboost":
        return 2 ** (config.max_depth - 1)
    return config.num_leaves - 1


def round_bytes(config: GBDTConfig, rows: int, features: int, workers: int) -> int:
    """Bytes all workers together send and receive per tree, from each mode's algorithm."""
    p = workers
    if p == 1:
        return 0
    nodes = histograms_per_tree(config)
    bins = features * config.max_bin * HIST_ENTRY
    splits = nodes * p * SPLIT_INFO  # every member's best split per node, gathered
    if config.mode == "feature":  # best splits, and one bit per row per level
        decisions = 2 * 2 * (p - 1) * math.ceil(rows / 8) * config.max_depth
        return decisions + 2 * splits
    if config.library == "xgboost":  # ring all-reduce: each sends and receives 2 (p-1)/p
        return 2 * 2 * (p - 1) * nodes * bins
    if config.mode == "voting":
        bins = min(2 * config.top_k, features) * config.max_bin * HIST_ENTRY
    # reduce-scatter: each sends and receives (p - 1) / p of the histograms; then the splits
    return 2 * (p - 1) * nodes * bins + 2 * splits


# ---------------------------------------------------------------- reference and job contract


def reference(source: Source, config: GBDTConfig, rounds: int | None = None) -> np.ndarray:
    """Single-node training with the library (one thread) on the same training rows; its
    held-out predictions, in global row order."""
    X, y = source.read(0, source.rows)
    train = ~held_out(config.seed, 0, source.rows, config.holdout)
    rounds = config.rounds if rounds is None else rounds
    if config.library == "xgboost":
        booster = xgb.train(
            xgboost_params(config), xgb.DMatrix(X[train], y[train], nthread=1), rounds
        )
        return booster.inplace_predict(X[~train]).astype(np.float64)

    params = lightgbm_params(config)
    booster = lgb.train(params, lgb.Dataset(X[train], y[train], params=params), rounds)
    return booster.predict(X[~train], num_threads=1)


def synthetic(rows: int, features: int, seed: int, config: GBDTConfig) -> Classification:
    """The data ``scaling run/sweep gbdt`` use without ``--data``."""
    return Classification(rows=rows, features=features, seed=seed)


def baseline(
    source: Source, config: GBDTConfig, dtype: str = "float64"
) -> tuple[str, Callable[[int], object]]:
    """The single-node library on one thread (:func:`reference`), ``fit(n)`` growing n trees."""
    return f"{config.library}, single node, 1 thread", lambda n: reference(source, config, n)


def rows_per_iteration(config: GBDTConfig, rows: int) -> int:
    """Rows one round processes: every training row."""
    return round(rows * (1 - config.holdout))


def explain(rows: int, features: int, workers: int, config: GBDTConfig) -> list[Step]:
    """One round (one tree) of ``config.mode`` as :func:`_member` runs it (``scaling explain``)."""
    p, n, F, B = workers, round(rows * (1 - config.holdout)), features, config.max_bin
    nodes = histograms_per_tree(config)
    sends = round_bytes(config, rows, features, p) // (2 * p)  # each worker's share, sent
    where = f"each of {p} workers"
    train = "_xgboost" if config.library == "xgboost" else "_lightgbm"
    if config.mode == "feature":
        return [
            Step(
                "map",
                train,
                where,
                f"histograms of all {n:,} rows over its {math.ceil(F / p)} columns "
                f"(after _replicate: {n * F * (p - 1) // p:,} values received once)",
                n * F / p * config.max_depth,
                0,
            ),
            Step(
                "combine",
                train,
                f"peers: all-gather over {p} workers",
                f"best split per node ({nodes} nodes); the owner's left/right bit per row",
                nodes * F / p * B,
                sends,
            ),
            Step("update", train, where, "apply the split to every row", n * config.max_depth, 0),
        ]
    ring = config.library == "xgboost"
    levels = config.max_depth if ring else math.log2(config.num_leaves)
    voting = config.mode == "voting"
    merged = min(2 * config.top_k, F) if voting else F
    return [
        Step(
            "map",
            train,
            where,
            f"gradients and histograms of its ~{n // p:,} rows, {F} features x {B} bins per node",
            n / p * F * levels,
            0,
        ),
        Step(
            "combine",
            train,
            f"peers: {'ring all-reduce' if ring else 'reduce-scatter'} over {p} workers",
            f"sum {nodes} histograms per tree"
            + (f" of the 2k = {2 * config.top_k} most voted features" if voting else ""),
            nodes * merged * B / p,
            sends,
        ),
        Step(
            "update",
            train,
            where,
            "the same best split everywhere; route own rows left or right",
            n / p * levels,
            0,
        ),
    ]


EXPLAIN_NOTE = (
    "Histogram building is O(n F / p) per worker per level; what moves is O(nodes F B) "
    "whatever n, so data-parallel wins with many rows and few features. Voting sends 2k "
    "features' histograms instead of F: it wins when F is large. Feature-parallel sends only "
    "splits and a bit per row per level, but every worker first holds all rows of its "
    "columns: it wins with few rows and many features (LightGBM's own guidance)."
)


def quality(result: GBDTResult) -> dict:
    """What a run record reports about the training."""
    return {
        "heldout_logloss": result.logloss,
        "heldout_auc": result.auc,
        "rounds": result.rounds,
        "train_seconds": result.train_seconds,
        "gang_seconds": result.gang_seconds,
        "replica_bytes": result.replica_bytes,
    }


def arrays(result: GBDTResult) -> dict[str, np.ndarray]:
    """What a run saves beside its record: held-out predictions and the model's bytes."""
    return {
        "predictions": result.predictions,
        "rows": result.rows,
        "model": np.frombuffer(result.model, dtype=np.uint8),
    }
