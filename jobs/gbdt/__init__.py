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

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from jobs.gbdt.config import ITERATION, LIBRARIES, MODES, GBDTConfig, GBDTResult
from jobs.gbdt.steps import explain, round_bytes
from scaling.data import Classification, Source
from scaling.job import NO_CONTEXT, Baseline, Job, RunContext

if TYPE_CHECKING:
    from scaling.engines import Dataset, Engine
    from scaling.model.steps import Step


class GBDT(Job[GBDTConfig, GBDTResult]):
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
    variants: ClassVar[dict[str, dict]] = {
        "xgboost data": {"library": "xgboost", "mode": "data"},
        "xgboost feature": {"library": "xgboost", "mode": "feature"},
        "lightgbm data": {"library": "lightgbm", "mode": "data"},
        "lightgbm feature": {"library": "lightgbm", "mode": "feature"},
        "lightgbm voting": {"library": "lightgbm", "mode": "voting"},
    }

    def resumable(self, config: GBDTConfig) -> bool:
        from jobs.gbdt.train import resumable

        return resumable(config)

    def timed(self, config: GBDTConfig, iterations: int) -> GBDTConfig:
        return replace(config, rounds=iterations)

    def parameters(self, features: int, config: GBDTConfig) -> int:
        # per tree, at most: a feature and a threshold per split, a value per leaf (splits + 1)
        splits = 2**config.max_depth - 1 if config.library == "xgboost" else config.num_leaves - 1
        return config.rounds * (3 * splits + 1)

    def fit(
        self,
        engine: Engine,
        ds: Dataset,
        config: GBDTConfig,
        context: RunContext = NO_CONTEXT,
    ) -> GBDTResult:
        from jobs.gbdt.train import fit

        return fit(engine, ds, config, context.on_iteration, context.checkpoints)

    def explain(self, rows: int, features: int, workers: int, config: GBDTConfig) -> list[Step]:
        return explain(rows, features, workers, config)

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

    def partition(
        self, rows: int, features: int, workers: int, config: GBDTConfig
    ) -> tuple[int, int]:
        # feature-parallel: every row of its share of the columns, and every row to route per
        # split (what keeps it from scaling where the rows outnumber the features' bins)
        if config.mode == "feature":
            return rows, -(-features // workers)
        return super().partition(rows, features, workers, config)

    def rows_per_iteration(self, config: GBDTConfig, rows: int) -> int:
        return round(rows * (1 - config.holdout))

    def arrays(self, result: GBDTResult) -> dict[str, np.ndarray]:
        return {
            "predictions": result.predictions,
            "rows": result.rows,
            "model": np.frombuffer(result.model, dtype=np.uint8),
        }


JOB = GBDT()

__all__ = [
    "ITERATION",
    "JOB",
    "LIBRARIES",
    "MODES",
    "GBDTConfig",
    "GBDTResult",
    "explain",
    "round_bytes",
]
