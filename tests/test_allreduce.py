"""The all-reduce execution: the mesh's collectives on real sockets, and the executor on every
engine (a loop's iterations measured inside the workers, sums checked against the driver's)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from jobs import kmeans
from scaling.collectives.allreduce import RING_BYTES, Mesh, allreduce_bytes
from scaling.data import Blobs
from scaling.engines.rendezvous import Rendezvous
from scaling.engines.worker import GangContext
from scaling.errors import EngineError, UsageError
from scaling.execution import execute
from scaling.testing import larger, reduce_with


def _members(world: int, member) -> list:
    """Run ``member(mesh)`` on ``world`` threads joined in one mesh; their results."""
    out, errors = [None] * world, []
    met = Rendezvous("127.0.0.1", world, timeout=30)

    def run(rank: int) -> None:
        try:
            mesh = Mesh(
                GangContext(rank=rank, world=world, host=met.host, port=met.port), timeout=30
            )
            out[rank] = member(mesh)
            mesh.close()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    met.close()
    assert not errors, errors
    return out


@pytest.mark.parametrize("world", [2, 3, 4, 5])
@pytest.mark.parametrize("size", [33, RING_BYTES // 8 + 1001])  # recursive doubling; ring
def test_allreduce_sums_bit_identically_with_the_bytes_it_claims(world, size):
    def member(mesh: Mesh):
        x = np.random.default_rng(mesh.rank).normal(size=size)
        before = mesh.bytes_moved()
        total = mesh.allreduce(x.copy())
        mesh.allgather(None)  # a barrier: every member has sent all it will
        return x, total, mesh.bytes_moved() - before - _allgather_bytes(mesh)

    out = _members(world, member)
    expected = sum(x for x, _, _ in out)
    for _, total, _ in out:
        assert np.array_equal(total, out[0][1])  # every replica gets the same bits
    np.testing.assert_allclose(out[0][1], expected, rtol=1e-12, atol=1e-12)
    # What the kernel counted (sent + received, all members) against the algorithm's volume:
    # the busiest member sends allreduce_bytes; in all, every byte sent is received once.
    counted = sum(n for _, _, n in out) / 2
    busiest = allreduce_bytes(8 * size, world)
    assert busiest <= counted <= world * busiest * 1.01


def _allgather_bytes(mesh: Mesh) -> int:
    # each of world - 1 rounds sends and receives an 8-byte size and the pickled None
    import pickle

    return 2 * (mesh.world - 1) * (8 + len(pickle.dumps(None, protocol=5)))


def test_allgather_returns_every_members_object_in_rank_order():
    out = _members(3, lambda mesh: mesh.allgather({"rank": mesh.rank, "x": "y" * mesh.rank}))
    assert out == [[{"rank": r, "x": "y" * r} for r in range(3)]] * 3


SOURCE = Blobs(rows=20_000, features=4, centers=4, cluster_std=3.0, seed=5)


@pytest.fixture(scope="module")
def blobs(engine):
    ds = engine.load(SOURCE)
    yield ds
    engine.release(ds)


def test_iterations_are_measured_inside_the_workers(engine, blobs, fresh_trace):
    config = kmeans.KMeansConfig(k=4, max_iter=6, tol=0, execution="allreduce")
    seen = []
    result = kmeans.fit(engine, blobs, config, on_iteration=lambda i, m: seen.append(i))
    spans = fresh_trace.summaries(kmeans.ITERATION)
    assert len(spans) == result.n_iter == 6 and seen == list(range(6))
    sums = 8 * 4 * (4 + 1)  # k (d + 1) float64
    for s in spans:
        assert s["sources"]["split"].startswith("measured")
        assert s["compute"] + s["communication"] + s["overhead"] == pytest.approx(s["wall"])
        if engine.workers == 1:
            assert s["bytes_in"] + s["bytes_out"] == 0
        else:  # each member sends and receives the partial sums once (recursive doubling)
            assert s["sources"]["bytes"].startswith("measured: kernel")
            assert s["bytes_in"] + s["bytes_out"] >= 0.95 * 4 * sums
    if engine.workers > 1:  # over the fit (a busy host once counted 53 B more in one of six)
        moved = sum(s["bytes_in"] + s["bytes_out"] for s in spans)
        assert moved == pytest.approx(6 * 4 * sums, rel=0.05)
    # no engine call per iteration: the whole fit is the driver's init, one gang, one final
    assert [c.op for c in fresh_trace.calls].count("gang") == 1
    assert len(fresh_trace.calls) < 12


def test_a_combine_that_is_not_a_sum_is_refused(engine, blobs):
    with pytest.raises((UsageError, EngineError), match="larger is not add or add_each"):
        execute(engine, blobs, "allreduce", reduce_with, larger, iteration="x")
    assert execute(engine, blobs, "driver", reduce_with, larger, iteration="x") > 0


def test_fewer_partitions_than_workers_is_refused(engine):
    ds = engine.load(SOURCE, partitions=1)
    config = kmeans.KMeansConfig(k=4, max_iter=2, execution="allreduce")
    if engine.workers == 1:
        assert kmeans.fit(engine, ds, config).n_iter == 2
    else:
        with pytest.raises(UsageError, match="needs a partition per worker"):
            kmeans.fit(engine, ds, config)
    engine.release(ds)
