"""The engine contract: every engine must pass this suite (fugue's execution_suite idea)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from scaling import testing as T
from scaling.data import Blobs, NpyFile, partition_bounds
from scaling.errors import DataError, EngineError, UsageError

SOURCE = Blobs(rows=50_000, features=6, centers=3, seed=7)


@pytest.fixture(scope="module")
def dataset(engine):
    ds = engine.load(SOURCE, partitions=3)
    yield ds
    engine.release(ds)


def test_load_describes_the_data(engine, dataset):
    assert (dataset.rows, dataset.features, dataset.partitions) == (50_000, 6, 3)
    shapes = engine.map(dataset, T.shape)
    bounds = partition_bounds(50_000, 3)
    assert [s[0] for s in shapes] == [a for a, _ in bounds]
    assert [s[1] for s in shapes] == [(b - a, 6) for a, b in bounds]


def test_rows_do_not_depend_on_partitioning(engine):
    X, _ = SOURCE.read(0, SOURCE.rows)
    for partitions in (1, 4):
        ds = engine.load(SOURCE, partitions=partitions)
        total = engine.map_reduce(ds, T.column_sums, T.add, 1.0)
        np.testing.assert_allclose(total, np.r_[X.sum(axis=0), len(X)], rtol=1e-12)
        engine.release(ds)


def test_map_runs_on_the_workers_and_data_stays_cached(engine, dataset):
    first, second = engine.map(dataset, T.where), engine.map(dataset, T.where)
    assert first == second  # same process, same array object: cached, not reloaded
    pids = {pid for pid, _ in first}
    if engine.name == "local":
        assert pids == {os.getpid()}
    else:
        assert os.getpid() not in pids
        assert len(pids) == engine.workers


def test_workers_use_one_thread(engine, dataset):
    assert engine.map(dataset, T.blas_threads) == [1, 1, 1]


def test_map_reduce_combines_to_one_value(engine, dataset, fresh_trace):
    X, _ = SOURCE.read(0, SOURCE.rows)
    total = engine.map_reduce(dataset, T.column_sums, T.add, 2.0)
    np.testing.assert_allclose(total, 2.0 * np.r_[X.sum(axis=0), len(X)], rtol=1e-12)
    (call,) = fresh_trace.calls
    assert call.op == "map_reduce" and call.tasks == min(engine.workers, 3)
    assert call.bytes_out >= 7 * 8 and call.bytes_in > 0
    assert 0 < call.compute <= call.wall
    assert call.compute + call.communication + call.overhead == pytest.approx(call.wall)


def test_broadcast_reaches_every_partition(engine, dataset):
    handle = engine.broadcast(np.arange(1000.0))
    assert engine.map(dataset, T.total, handle) == [499500.0] * 3
    assert engine.trace.calls[-2].bytes_in == 8000 * engine.workers


def test_gang_runs_all_members_at_once(engine, dataset):
    results = engine.gang(dataset, T.gather_rows, "x", timeout=120)
    world = engine.workers
    assert [r[:3] for r in results] == [(r, world, "x") for r in range(world)]
    gathered = results[0][3]
    assert [rank for rank, _ in gathered] == list(range(world))
    assert sum(rows for _, rows in gathered) == 50_000
    assert all(r[3] == gathered for r in results)


def test_task_errors_name_the_cause(engine, dataset):
    with pytest.raises(EngineError, match="bad partition at row"):
        engine.map(dataset, T.fail)


def test_nonfinite_data_is_rejected(engine, tmp_path):
    X = np.ones((100, 3))
    X[57, 1] = np.nan
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(DataError, match=r"1 NaN or infinite values in rows 50-100"):
        engine.load(NpyFile(rows=100, features=3, path=str(tmp_path / "x.npy")), partitions=2)


def test_bad_load_arguments(engine):
    with pytest.raises(UsageError, match="partitions"):
        engine.load(SOURCE, partitions=0)
    with pytest.raises(UsageError, match="dtype"):
        engine.load(SOURCE, dtype="int8")


def test_the_driver_uses_one_blas_thread_while_the_engine_is_open(engine):
    # Spin-waiting driver BLAS threads would take the cores the workers need.
    from threadpoolctl import threadpool_info

    assert max(p["num_threads"] for p in threadpool_info()) == 1
