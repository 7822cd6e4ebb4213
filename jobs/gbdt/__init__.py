"""Gradient-boosted trees with XGBoost and LightGBM, data-, feature- and voting-parallel.

Run it (one line each)::

    scaling run gbdt --engine local --rows 100000 --features 28
    scaling run gbdt --engine dask  --workers 1,2 --library xgboost --mode data
    scaling run gbdt --engine ray   --workers 2 --library xgboost --mode feature
    scaling run gbdt --engine spark --workers 2 --library lightgbm --mode voting --top-k 8

One gang call (:func:`jobs.gbdt.train.member` on every worker at once) trains the whole model
with the library's own collective; the engine only places the members next to their rows and
gives them a rendezvous. A boosting round grows one tree: per tree node, each worker builds gradient
histograms (features x bins) of its rows, the workers agree on the best split, and every
worker applies it to its rows. The modes differ in what is split and what is exchanged:

- ``data`` (rows split across workers; XGBoost ``hist`` and LightGBM ``tree_learner=data``):
  histograms are summed across workers. XGBoost all-reduces each node's histogram
  (its tracker runs on the driver, its collective on the workers:
  :mod:`scaling.collectives.xgboost`);
  LightGBM reduce-scatters them, so that each worker owns the merged histograms of 1/p of the
  features, finds the best split among them, and the workers all-gather their best splits.
- ``feature`` (columns split across workers; XGBoost ``DataSplitMode.COL``): every worker
  first gets all rows of its columns (:func:`jobs.gbdt.train._replicate`, one all-to-all); per
  node each finds the best split among its columns, the best of those is agreed on, and its owner's
  left/right decision for every row is shared (a bit per row per level). The model equals
  single-node training exactly.
- ``voting`` (LightGBM ``tree_learner=voting``, rows split): each worker votes for its local
  top-k features per leaf; only the histograms of the 2k most voted features are merged
  (Meng et al., "A Communication-Efficient Parallel Algorithm for Decision Tree", 2016).

  LightGBM's ``tree_learner=feature`` is the other design: every worker first gets every
  row (:func:`jobs.gbdt.train._replicate_all`, one all-gather), finds the best split among
  its block of features, and only the best splits are all-gathered; each worker then splits
  its own copy of the rows. Its C API (behind the Python package, ``lightgbm.dask`` and
  SynapseML) rejects that learner; only LightGBM's command-line program has it, which
  :mod:`scaling.collectives.lightgbm_cli` builds once from LightGBM's source release.

A fraction ``holdout`` of the rows (chosen per global row from the seed, so the same at any
number of workers) is held out and scored after training: log-loss and AUC.

This module is the job's light half (config, Job contract, payloads); XGBoost and LightGBM are
imported by :mod:`jobs.gbdt.train`, only when a run needs them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from scaling.data import Classification, Source
from scaling.errors import UsageError, check_choice, check_count
from scaling.job import Baseline, Job, OnIteration
from scaling.model.explain import Step

if TYPE_CHECKING:
    from scaling.engines import Dataset, Engine

ITERATION = "round"
"""Trace span of one boosting round: one tree."""
LIBRARIES = ("xgboost", "lightgbm")
MODES = ("data", "feature", "voting")
HIST_ENTRY = 16
"""Bytes of one histogram bin: a (gradient, hessian) pair of float64, in both libraries."""
# What the libraries' records weigh on the wire, as the kernel's socket counters show (2 and 3
# workers, XGBoost 3.x, LightGBM 4.x): LightGBM's SplitInfo::Size with max_cat_threshold = 32
# categories; its voting's LightSplitInfo (feature, gain, count); XGBoost's split entry as its
# column split gathers them.
LIGHTGBM_SPLIT = 222
LIGHTGBM_VOTE = 16
XGBOOST_SPLIT = 270
XGBOOST_COL_SPLIT_UNTIL = (3, 4)
"""XGBoost 3.4 removed column-split training: feature-parallel needs an older one."""


def _xgboost_version() -> str:
    """The installed XGBoost's version, from its package metadata (importing it takes 2 s)."""
    for name in ("xgboost-cpu", "xgboost"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "0"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".")[:2] if x.isdigit())


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
        if (self.library, self.mode) == ("xgboost", "feature") and (
            _version_tuple(_xgboost_version()) >= XGBOOST_COL_SPLIT_UNTIL
        ):
            raise UsageError(
                f"XGBoost {_xgboost_version()} has no column-split training "
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


def memory_needed(rows: int, features: int, dtype: str, workers: int) -> int:
    """Bytes a worker needs for its n F / p values (its rows, or in feature mode all rows of
    its columns): the cached partitions, the training copy and the library's matrix (~8 bytes
    per value as XGBoost's CSR entries, 1 per binned value)."""
    values = rows * features / workers
    return int(values * (2 * np.dtype(dtype).itemsize + 9))


def histograms_per_tree(config: GBDTConfig) -> int:
    """Histograms built (and exchanged) per tree; the sibling of each is by subtraction.

    XGBoost grows depth-wise: the root, then the smaller child of each node on levels
    1 .. depth - 1: 2^(depth - 1). LightGBM grows leaf-wise: the root, then one per split.
    """
    if config.library == "xgboost":
        return 2 ** (config.max_depth - 1)
    return config.num_leaves - 1


def allreduce_volume(library: str, workers: int) -> float:
    """Bytes all workers together send and receive to all-reduce one byte of buffer.

    A bandwidth-optimal ring sends and receives 2 (p - 1) / p per worker: 4 (p - 1) in all.
    XGBoost's all-reduce moves (2p - 1) / p per worker each way, 2 (2p - 1) in all: the kernel's
    counters show 1.5x, 1.25x and 1.17x the ring's volume at 2, 3 and 4 workers.
    """
    p = workers
    return 2 * (2 * p - 1) if library == "xgboost" else 4 * (p - 1)


def round_bytes(config: GBDTConfig, rows: int, features: int, workers: int) -> int:
    """Bytes all workers together send and receive per tree, from each mode's algorithm.

    Notes
    -----
    - XGBoost, data: each node's histogram (F x bins x 16 B) is all-reduced
      (:func:`allreduce_volume`); 2^(depth - 1) histograms per tree.
    - XGBoost, feature: per level, two bit vectors over the training rows (which rows go left,
      which have missing values) are all-reduced, and every worker's best split per node is
      all-gathered (each of p records reaches p - 1 others, sent and received).
    - LightGBM, data and voting: the histograms (voting: of the 2k most voted features) are
      reduce-scattered, (p - 1) / p of them per worker each way; per split the best splits of
      the two new leaves are all-gathered; voting also all-gathers each worker's top-k votes.
    Checked against the measured bytes at 2 workers by the tests; LightGBM at 3 workers moves
    ~15% more than this (its reduce-scatter when p is not a power of two).
    """
    p = workers
    if p == 1:
        return 0
    gathered = 2 * p * (p - 1)  # an all-gather: each of p records to p - 1 others, both ways
    nodes = histograms_per_tree(config)
    bins = features * config.max_bin * HIST_ENTRY
    if config.mode == "feature" and config.library == "lightgbm":
        # Every worker holds every row: per split only the best split of each is all-gathered.
        return (config.num_leaves - 1) * gathered * LIGHTGBM_SPLIT
    if config.mode == "feature":
        training = round(rows * (1 - config.holdout))
        bits = 2 * math.ceil(training / 8) * config.max_depth
        splits = gathered * (2**config.max_depth - 1) * XGBOOST_SPLIT
        return int(allreduce_volume("xgboost", p) * bits) + splits
    if config.library == "xgboost":
        return int(allreduce_volume("xgboost", p) * nodes * bins)
    splits = nodes * 2 * gathered * LIGHTGBM_SPLIT  # the two new leaves' best splits
    if config.mode == "voting":
        bins = min(2 * config.top_k, features) * config.max_bin * HIST_ENTRY
        splits += nodes * 2 * gathered * config.top_k * LIGHTGBM_VOTE
    return 2 * (p - 1) * nodes * bins + splits


def explain(rows: int, features: int, workers: int, config: GBDTConfig) -> list[Step]:
    """One round (one tree) of ``config.mode`` as the members run it (``scaling explain``)."""
    p, n, F, B = workers, round(rows * (1 - config.holdout)), features, config.max_bin
    nodes = histograms_per_tree(config)
    sends = round_bytes(config, rows, features, p) // (2 * p)  # each worker's share, sent
    where = f"each of {p} workers"
    train = "train._xgboost" if config.library == "xgboost" else "train._lightgbm"
    if config.mode == "feature":
        xgboost = config.library == "xgboost"
        received = n * F * (p - 1) // p if xgboost else n * F * (p - 1)
        return [
            Step(
                "map",
                train,
                where,
                f"histograms of all {n:,} rows over its {math.ceil(F / p)} columns (after "
                f"train.{'_replicate' if xgboost else '_replicate_all'}: {received:,} values "
                "received once)",
                n * F / p * config.max_depth,
                0,
                reads=n * F / p * config.max_depth,  # one byte per binned value, per level
            ),
            Step(
                "combine",
                train,
                f"peers: all-gather over {p} workers",
                f"best split per node ({nodes} nodes)"
                + ("; the owner's left/right bit per row" if xgboost else ""),
                nodes * F / p * B,
                sends,
                "allgather",
                repeats=config.max_depth if xgboost else nodes,
                transport=config.library,
            ),
            Step(
                "update",
                train,
                where,
                "apply the split to every row" + ("" if xgboost else " (each has all columns)"),
                n * config.max_depth,
                0,
            ),
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
            reads=n / p * F * levels,  # one byte per binned value, per level
        ),
        Step(
            "combine",
            train,
            f"peers: {'ring all-reduce' if ring else 'reduce-scatter'} over {p} workers",
            f"sum {nodes} histograms per tree"
            + (f" of the 2k = {2 * config.top_k} most voted features" if voting else ""),
            nodes * merged * B / p,
            sends,
            "ring" if ring else "reduce-scatter",
            repeats=config.max_depth if ring else nodes,
            transport=config.library,
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


class GBDT(Job):
    name = "gbdt"
    config = GBDTConfig
    demo_config = GBDTConfig(rounds=20)  # 20 rounds of data-parallel XGBoost, depth 6
    demo_rows = 300_000
    iteration = ITERATION
    unit = "training rows"  # per round: every training row goes through one tree
    headline = "heldout_auc"
    explain_note = (
        "Histogram building is O(n F / p) per worker per level; what moves is O(nodes F B) "
        "whatever n, so data-parallel wins with many rows and few features. Voting sends 2k "
        "features' histograms instead of F: it wins when F is large. Feature-parallel sends "
        "only splits and a bit per row per level, but every worker first holds all rows of its "
        "columns: it wins with few rows and many features (LightGBM's own guidance)."
    )
    explain = staticmethod(explain)
    variants: ClassVar[dict[str, dict]] = {
        "xgboost data": {"library": "xgboost", "mode": "data"},
        "xgboost feature": {"library": "xgboost", "mode": "feature"},
        "lightgbm data": {"library": "lightgbm", "mode": "data"},
        "lightgbm feature": {"library": "lightgbm", "mode": "feature"},
        "lightgbm voting": {"library": "lightgbm", "mode": "voting"},
    }

    def interview(self, ask) -> list:
        from scaling.present.interview import Answer

        xd, xf = "xgboost data", "xgboost feature"
        ld, lf, lv = "lightgbm data", "lightgbm feature", "lightgbm voting"
        a = Answer(
            "How does XGBoost parallelise, beyond its built-in parallel split finding: by "
            "data and by feature?"
        )
        a.say(
            "Inside one machine XGBoost already splits the work of finding a split over "
            "threads. Over machines, data-parallel (row split) gives each worker a block of "
            "rows: it builds the gradient histograms of its rows for a level's nodes "
            f"({ask.step(a, 'map', 'flops', variant=xd)} for the busiest), the workers "
            f"all-reduce them ({ask.step(a, 'combine', 'sends', variant=xd)} per worker per "
            f"tree, in {ask.step(a, 'combine', 'repeats', variant=xd)} rounds, one a level), "
            "and every worker picks the same best split from the same sums: the "
            "single-machine trees. What moves is sized by nodes x features x bins, "
            "whatever the rows."
        )
        a.say(
            "Feature-parallel (column split) gives each worker a block of columns of every "
            "row, after a one-time exchange of the data: each finds the best split among its "
            "own columns, the best one wins, and its owner tells the others which rows go "
            "left, a bit per row: "
            f"{ask.step(a, 'combine', 'sends', variant=xf)} per worker per tree here. It "
            "wins with few rows and many features; with many rows the bits per row and the "
            "replica cost more than the histograms."
        )
        b = Answer("Why is LightGBM faster, and how does its parallel training work?")
        b.say(
            "On one machine: histograms of binned features (a split costs bins, not rows), "
            "the smaller child's histogram built and its sibling's taken as the parent's "
            "minus it (XGBoost's hist method now does both), exclusive feature bundling "
            "(sparse features that are never non-zero together share one histogram), "
            "optionally gradient-based one-side sampling of the rows, and leaf-wise growth, "
            "which splits the leaf that gains most and reaches a loss with fewer nodes than "
            "depth-wise growth."
        )
        b.say(
            "In parallel, its data-parallel learner reduce-scatters the histograms, so each "
            "machine sums and searches only its share of the features, and then shares only "
            f"the best splits: {ask.step(b, 'combine', 'sends', variant=ld)} per worker per "
            "tree against XGBoost's all-reduce of "
            f"{ask.step(b, 'combine', 'sends', variant=xd)}. "
            "Voting-parallel (Meng et al., NeurIPS 2016) has each machine vote for its top k "
            "features and sums the histograms of the 2k most voted only, so what moves no "
            "longer grows with the features: "
            f"{ask.step(b, 'combine', 'sends', variant=lv, features=1000)} against "
            f"{ask.step(b, 'combine', 'sends', variant=ld, features=1000)} for its "
            "data-parallel learner at a thousand features. Its feature-parallel learner keeps "
            "every row on every machine, so only the best split moves "
            f"({ask.step(b, 'combine', 'sends', variant=lf)} per worker per tree)."
        )
        follow = Answer("Follow-up: and with 10,000 features?")
        follow.say(
            "Data-parallel histograms grow with the features: XGBoost's all-reduce becomes "
            f"{ask.step(follow, 'combine', 'sends', variant=xd, features=10_000)} per worker per "
            "tree, and the work per node of scanning them too. Voting keeps it at 2k "
            f"features' histograms "
            f"({ask.step(follow, 'combine', 'sends', variant=lv, features=10_000)}), and "
            "feature-parallel splits the columns, for the one-time cost of its replica: "
            "which one wins depends on rows x features, which is what "
            "`scaling predict gbdt --mode ...` weighs."
        )
        return [a, b, follow]

    def resumable(self, config: GBDTConfig) -> bool:
        from jobs.gbdt.train import resumable

        return resumable(config)

    def parameters(self, features: int, config: GBDTConfig) -> int:
        # per tree, at most: a feature and a threshold per split, a value per leaf (splits + 1)
        splits = 2**config.max_depth - 1 if config.library == "xgboost" else config.num_leaves - 1
        return config.rounds * (3 * splits + 1)

    def fit(
        self,
        engine: Engine,
        ds: Dataset,
        config: GBDTConfig,
        on_iteration: OnIteration | None = None,
    ) -> GBDTResult:
        from jobs.gbdt.train import fit

        return fit(engine, ds, config, on_iteration)

    def synthetic(self, rows: int, features: int, seed: int, config: GBDTConfig) -> Source:
        return Classification(rows=rows, features=features, seed=seed)

    def baseline(self, source: Source, config: GBDTConfig, dtype: str = "float64") -> Baseline:
        from jobs.gbdt.train import reference_trainer

        return Baseline(
            f"{config.library}, single node, 1 thread", reference_trainer(source, config)
        )

    def execution(self, config: GBDTConfig) -> str:
        # every mode trains in a gang over the library's collectives: XGBoost's all-reduce,
        # LightGBM's reduce-scatter and all-gather (an all-reduce's two halves)
        return "allreduce"

    def quality(self, result: GBDTResult) -> dict:
        return {
            "heldout_logloss": result.logloss,
            "heldout_auc": result.auc,
            "rounds": result.rounds,
            "train_seconds": result.train_seconds,
            "gang_seconds": result.gang_seconds,
            "replica_bytes": result.replica_bytes,
        }

    def iterations(self, config: GBDTConfig) -> int:
        return config.rounds

    def rows_per_iteration(self, config: GBDTConfig, rows: int) -> int:
        return round(rows * (1 - config.holdout))

    def arrays(self, result: GBDTResult) -> dict[str, np.ndarray]:
        return {
            "predictions": result.predictions,
            "rows": result.rows,
            "model": np.frombuffer(result.model, dtype=np.uint8),
        }


JOB = GBDT()
