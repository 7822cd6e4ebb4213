"""One boosting round as the steps the gang runs, with the bytes each mode moves (what ``scaling
explain gbdt`` prints and the cost model prices)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from jobs.gbdt.config import (
    HIST_ENTRY,
    LIGHTGBM_SPLIT,
    LIGHTGBM_VOTE,
    XGBOOST_SPLIT,
    GBDTConfig,
)
from scaling.model.steps import Step

if TYPE_CHECKING:
    pass


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
                kind="map",
                function=train,
                where=where,
                does=f"histograms of all {n:,} rows over its {math.ceil(F / p)} columns (after "
                f"train.{'_replicate' if xgboost else '_replicate_all'}: {received:,} values "
                "received once)",
                flops=n * F / p * config.max_depth,
                sends=0,
                reads=n * F / p * config.max_depth,  # one byte per binned value, per level
            ),
            Step(
                kind="combine",
                function=train,
                where=f"peers: all-gather over {p} workers",
                does=f"best split per node ({nodes} nodes)"
                + ("; the owner's left/right bit per row" if xgboost else ""),
                flops=nodes * F / p * B,
                sends=sends,
                pattern="allgather",
                repeats=config.max_depth if xgboost else nodes,
                transport=config.library,
            ),
            Step(
                kind="update",
                function=train,
                where=where,
                does="apply the split to every row"
                + ("" if xgboost else " (each has all columns)"),
                flops=n * config.max_depth,
                sends=0,
            ),
        ]
    ring = config.library == "xgboost"
    levels = config.max_depth if ring else math.log2(config.num_leaves)
    voting = config.mode == "voting"
    merged = min(2 * config.top_k, F) if voting else F
    return [
        Step(
            kind="map",
            function=train,
            where=where,
            does=f"gradients and histograms of its ~{n // p:,} rows, {F} features x {B} bins "
            "per node",
            flops=n / p * F * levels,
            sends=0,
            reads=n / p * F * levels,  # one byte per binned value, per level
        ),
        Step(
            kind="combine",
            function=train,
            where=f"peers: {'ring all-reduce' if ring else 'reduce-scatter'} over {p} workers",
            does=f"sum {nodes} histograms per tree"
            + (f" of the 2k = {2 * config.top_k} most voted features" if voting else ""),
            flops=nodes * merged * B / p,
            sends=sends,
            pattern="ring" if ring else "reduce-scatter",
            repeats=config.max_depth if ring else nodes,
            transport=config.library,
        ),
        Step(
            kind="update",
            function=train,
            where=where,
            does="the same best split everywhere; route own rows left or right",
            flops=n / p * levels,
            sends=0,
        ),
    ]
