"""k-means on every engine at 1 and 2 workers, in both executions, equals scikit-learn's Lloyd
from the same centres."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from jobs import kmeans
from scaling.data import Blobs, open_file
from scaling.errors import UsageError

SOURCE = Blobs(rows=30_000, features=5, centers=6, cluster_std=2.5, seed=11)
X, _ = SOURCE.read(0, SOURCE.rows)
START = X[[5, 900, 1700, 4000, 12000, 29000]].copy()


@pytest.fixture(scope="module")
def blobs(engine):
    ds = engine.load(SOURCE, partitions=3)
    yield ds
    engine.release(ds)


@pytest.mark.parametrize("execution", ["driver", "allreduce"])
def test_lloyd_equals_sklearn(engine, blobs, execution):
    ref = KMeans(6, init=START, n_init=1, max_iter=15, tol=0, algorithm="lloyd").fit(X)
    config = kmeans.KMeansConfig(k=6, init=START, max_iter=15, tol=0, execution=execution)
    result = kmeans.fit(engine, blobs, config)
    assert result.n_iter == ref.n_iter_
    np.testing.assert_allclose(result.centers, ref.cluster_centers_, rtol=1e-6)
    assert result.inertia == pytest.approx(ref.inertia_, rel=1e-6)
    np.testing.assert_array_equal(kmeans.predict(engine, blobs, result.centers), ref.labels_)


def test_relative_tol_stops_like_sklearn(engine, blobs):
    ref = KMeans(6, init=START, n_init=1, max_iter=100, tol=1e-2, algorithm="lloyd").fit(X)
    result = kmeans.fit(engine, blobs, kmeans.KMeansConfig(k=6, init=START, tol=1e-2))
    assert result.converged and result.n_iter == ref.n_iter_
    np.testing.assert_allclose(result.centers, ref.cluster_centers_, rtol=1e-6)


def test_kmeans_parallel_init_is_near_kmeans_plus_plus(engine):
    source = Blobs(rows=40_000, features=8, centers=10, cluster_std=0.5, seed=3)
    Xs, _ = source.read(0, source.rows)
    ds = engine.load(source)
    results = [
        kmeans.fit(engine, ds, kmeans.KMeansConfig(k=10, seed=1, execution=e))
        for e in ("driver", "allreduce")
    ]
    engine.release(ds)
    ref = KMeans(10, init="k-means++", n_init=1, random_state=0).fit(Xs)
    assert results[0].inertia <= 1.10 * ref.inertia_
    # k-means|| samples by each row's own coin, so both executions pick the same candidates
    np.testing.assert_allclose(results[1].centers, results[0].centers, rtol=1e-9)


def test_random_init_and_float32(engine):
    ds = engine.load(SOURCE, dtype="float32")
    result = kmeans.fit(
        engine,
        ds,
        kmeans.KMeansConfig(k=6, init="random", seed=2, tol=0, max_iter=30, execution="allreduce"),
    )
    engine.release(ds)
    dist = ((X[:, None, :] - result.centers[None]) ** 2).sum(axis=2)  # exact, float64
    assert result.inertia == pytest.approx(dist.min(axis=1).sum(), rel=1e-5)


def test_k_larger_than_rows_is_refused(engine):
    ds = engine.load(Blobs(rows=5, features=2, seed=0))
    with pytest.raises(UsageError, match="k=6 is larger than the number of rows"):
        kmeans.fit(engine, ds, kmeans.KMeansConfig(k=6))
    engine.release(ds)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, "k must be an integer >= 1"),
        ({"max_iter": 0}, "max_iter must be"),
        ({"tol": -1.0}, "tol must be >= 0"),
        ({"init": "kmeans++"}, "init must be one of"),
        ({"init": "missing.npy"}, "init file not found"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(UsageError, match=message):
        kmeans.KMeansConfig(**kwargs)


def test_given_centres_must_match_k_and_features():
    with pytest.raises(UsageError, match=r"expected finite \(6, 5\)"):
        kmeans.KMeansConfig(k=6, init=np.zeros((6, 4))).given_centers(5)


@pytest.mark.parametrize("execution", ["driver", "allreduce"])
def test_file_options_as_paths_relative_to_the_driver(engine, tmp_path, monkeypatch, execution):
    """``--data`` and ``--init`` relative to the driver's directory: the workers run in others
    (Spark's executors, Ray's workers, and every cluster started before this test moved)."""
    monkeypatch.chdir(tmp_path)
    np.save("rows.npy", X)
    np.save("centres.npy", START)
    ds = engine.load(open_file("rows.npy"), partitions=3)
    try:
        config = kmeans.KMeansConfig(
            k=6, init="centres.npy", max_iter=15, tol=0, execution=execution
        )
        result = kmeans.fit(engine, ds, config)
    finally:
        engine.release(ds)
    ref = KMeans(6, init=START, n_init=1, max_iter=15, tol=0, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(result.centers, ref.cluster_centers_, rtol=1e-6)
