"""Boosted trees: train time of this project's gang vs the libraries' own integrations.

    .venv/bin/python benchmarks/gbdt.py                  # the recorded run
    .venv/bin/python benchmarks/gbdt.py --rows 100000    # a quick look

Identical data for everyone: the seeded classification generator (1,000,000 x 28 float64), the
same 80% training rows (this project's held-out split), the same parameters (50 rounds,
XGBoost ``hist`` depth 6 / LightGBM 31 leaves, 255 bins, learning rate 0.1, one thread per
worker). Pairs, each measured on the *same* cluster (the one this project's engine started;
the library uses it through the engine's Dask client or active SparkSession), at 1 and 2
workers:

- XGBoost data-parallel on Dask: this project vs ``xgboost.dask.train`` (DaskDMatrix built from
  persisted dask arrays, timed with the training);
- XGBoost data-parallel on Spark: this project vs ``xgboost.spark.SparkXGBClassifier`` (a cached
  DataFrame, one column per feature);
- LightGBM data-parallel on Dask: this project vs ``lightgbm.dask.DaskLGBMClassifier``.

This project's time is its slowest member's training, from the library's matrix to the last
tree (``GBDTResult.train_seconds``; held-out scoring after it is left out, as the peers do none,
and so is splitting off the held-out rows, which the peers get done). Rounds of the pair
alternate, ``--repeat`` times; medians are reported. Writes ``benchmarks/results/gbdt.{md,json}``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from common import RESULTS, host_line, scatter_rows, write_result

from jobs import gbdt
from jobs.gbdt.config import lightgbm_params, xgboost_params
from scaling.data import Classification, row_uniforms
from scaling.engines import make_engine

TARGET = 1.1  # train time <= 1.1 x the library's own integration


def ours(eng, ds, config: gbdt.GBDTConfig) -> tuple[float, float]:
    result = gbdt.JOB.fit(eng, ds, config)
    return result.train_seconds, result.auc


def xgboost_dask(client, X, y, config: gbdt.GBDTConfig, workers: int) -> float:
    import xgboost.dask as xgb_dask

    Xd, yd = scatter_rows(client, X, workers), scatter_rows(client, y, workers)
    t0 = time.perf_counter()
    dtrain = xgb_dask.DaskDMatrix(client, Xd, yd)
    xgb_dask.train(client, xgboost_params(config), dtrain, config.rounds)
    return time.perf_counter() - t0


def lightgbm_dask(client, X, y, config: gbdt.GBDTConfig, workers: int) -> float:
    import lightgbm as lgb

    Xd, yd = scatter_rows(client, X, workers), scatter_rows(client, y, workers)
    params = lightgbm_params(config)
    params.pop("num_threads")
    model = lgb.DaskLGBMClassifier(
        client=client, n_estimators=config.rounds, tree_learner="data", n_jobs=1, **params
    )
    t0 = time.perf_counter()
    model.fit(Xd, yd)
    return time.perf_counter() - t0


def spark_xgboost(frame, config: gbdt.GBDTConfig, workers: int) -> float:
    from xgboost.spark import SparkXGBClassifier

    model = SparkXGBClassifier(
        features_col=[c for c in frame.columns if c != "label"],
        label_col="label",
        num_workers=workers,
        tree_method="hist",
        max_depth=config.max_depth,
        max_bin=config.max_bin,
        learning_rate=config.learning_rate,
        n_estimators=config.rounds,
        random_state=config.seed,
    )
    t0 = time.perf_counter()
    model.fit(frame)
    return time.perf_counter() - t0


def spark_frame(X: np.ndarray, y: np.ndarray, workers: int):
    """A cached DataFrame of the training rows (one column per feature, and the label) on the
    active session, one partition per worker."""
    import pandas as pd
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    session.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    table = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]).assign(label=y)
    frame = session.createDataFrame(table).repartition(workers).cache()
    frame.count()
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    source = Classification(rows=args.rows, features=args.features, seed=0)
    X, y = source.read(0, args.rows)
    train = row_uniforms(0, 0, args.rows) >= gbdt.GBDTConfig().holdout
    X, y = X[train], y[train].astype(np.float64)
    rows: list[dict] = []
    for p in (int(w) for w in args.workers.split(",")):
        for engine, library in (("dask", "xgboost"), ("dask", "lightgbm"), ("spark", "xgboost")):
            config = gbdt.GBDTConfig(library=library, rounds=args.rounds, timeout=1800)
            peer = {
                ("dask", "xgboost"): "xgboost.dask",
                ("dask", "lightgbm"): "lightgbm.dask",
                ("spark", "xgboost"): "xgboost.spark",
            }[engine, library]
            with make_engine(engine, p) as eng:
                ds = eng.load(source)
                if engine == "dask":
                    from distributed import default_client

                    run_peer = {"xgboost": xgboost_dask, "lightgbm": lightgbm_dask}[library]
                    client = default_client()

                    def peer_fit(client=client, run_peer=run_peer, config=config, p=p):
                        return run_peer(client, X, y, config, p)
                else:
                    frame = spark_frame(X, y, p)

                    def peer_fit(frame=frame, config=config, p=p):
                        return spark_xgboost(frame, config, p)

                mine, theirs, aucs = [], [], []
                for _ in range(args.repeat):  # alternate, so drift hits both alike
                    seconds, auc = ours(eng, ds, config)
                    mine.append(seconds)
                    aucs.append(auc)
                    theirs.append(peer_fit())
                row = {
                    "engine": engine,
                    "library": library,
                    "peer": peer,
                    "workers": p,
                    "ours": mine,
                    "peer_seconds": theirs,
                    "auc": statistics.median(aucs),
                    "ratio": statistics.median(mine) / statistics.median(theirs),
                }
                rows.append(row)
                print(
                    f"{engine} {library} p={p}: ours {statistics.median(mine):.2f}s "
                    f"{peer} {statistics.median(theirs):.2f}s ratio {row['ratio']:.2f}",
                    flush=True,
                )
            write(args, rows)
    print((Path(args.out) / "gbdt.md").read_text())


def write(args: argparse.Namespace, rows: list[dict]) -> None:
    lines = [
        "# Boosted trees: this project's gang vs the libraries' own integrations",
        "",
        f"Command: `.venv/bin/python benchmarks/gbdt.py --rows {args.rows} --features "
        f"{args.features} --rounds {args.rounds} --repeat {args.repeat}`",
        "",
        f"Data: {args.rows:,} x {args.features} float64 (80% training rows), {args.rounds} "
        "rounds, depth 6 (XGBoost) / 31 leaves (LightGBM), 255 bins, one thread per worker; "
        f"each pair on the same cluster. Host: {host_line()}.",
        "",
        "| engine | library | peer | workers | ours (s, median) | peer (s, median) | "
        f"ratio ours / peer (target <= {TARGET}) | held-out AUC (ours) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['engine']} | {r['library']} | {r['peer']} | {r['workers']} | "
            f"{statistics.median(r['ours']):.2f} | {statistics.median(r['peer_seconds']):.2f} | "
            f"{r['ratio']:.2f} | {r['auc']:.4f} |"
        )
    write_result(args.out, "gbdt", lines, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
