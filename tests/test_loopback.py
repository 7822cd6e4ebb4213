"""Every socket a run listens on is on loopback: the engines' own (Ray's GCS, raylet, workers
and agents; Dask's scheduler and workers; Spark's JVMs and Python workers), the project's
all-reduce mesh, torch's store, the parameter server and XGBoost's tracker.

XGBoost's and LightGBM's gang members are the exception, and the test holds them to it: their
C++ binds its peer listeners to every interface and has no option for another
(``TCPSocket::BindHost()`` and ``TcpSocket::Bind``, "0.0.0.0"), so such a socket may exist only
while boosted trees train.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import psutil
import pytest

from jobs import get_job
from scaling.data import Classification
from scaling.engines.net import is_loopback

SOURCE = Classification(rows=2_000, features=4, seed=0)
RUNS = [
    ("kmeans", {"execution": "allreduce", "k": 3, "max_iter": 3}),
    ("sgd", {"strategy": "ring-allreduce", "max_steps": 4, "batch_size": 64, "hidden": "8"}),
    ("sgd", {"strategy": "parameter-server", "max_steps": 4, "batch_size": 64, "hidden": "8"}),
    ("gbdt", {"rounds": 2, "max_depth": 2, "timeout": 60}),
    ("gbdt", {"rounds": 2, "library": "lightgbm", "num_leaves": 4, "timeout": 60}),
]
LIBRARY_LISTENERS = "gbdt"  # the runs whose members' libraries bind every interface


@contextmanager
def listeners(seen: list, phase: list, scans: dict):
    """Record ``(phases, pid, ip)`` of every listening socket of this process and all its
    descendants, over and over, while the block runs (``phases``: the phase when a scan began
    and when it ended, as a run may start during a scan); ``scans`` counts the whole scans
    made in each phase."""
    done = threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not done.is_set():
            now = phase[0]
            try:
                pids = {me.pid, *(c.pid for c in me.children(recursive=True))}
            except psutil.Error:
                continue
            found = [
                (c.pid, c.laddr.ip)
                for c in psutil.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN and c.pid in pids
            ]
            seen.extend(((now, phase[0]), pid, ip) for pid, ip in found)
            scans[now] = scans.get(now, 0) + 1

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@pytest.mark.parametrize(
    "engine", [("ray", 2), ("dask", 2), ("spark", 2)], indirect=True, ids=lambda p: p[0]
)
def test_every_listening_socket_is_on_loopback(engine):
    seen, phase, scans = [], ["load"], {}
    with listeners(seen, phase, scans):
        ds = engine.load(SOURCE)
        for i, (name, options) in enumerate(RUNS):
            phase[0] = f"{name} {i}"
            job = get_job(name)
            job.fit(engine, ds, job.config(**options))
            deadline = time.monotonic() + 10
            while scans.get(phase[0], 0) < 1 and time.monotonic() < deadline:
                time.sleep(0.01)  # a whole scan in each run, however short it was
        engine.release(ds)
    if engine.name != "local":  # the sampler saw the engine's own sockets in every run
        began = {p for (p, _), _, _ in seen}
        assert began >= {f"{name} {i}" for i, (name, _) in enumerate(RUNS)}
    outside = {(p, pid, ip) for p, pid, ip in seen if not is_loopback(ip)}
    # outside loopback only while boosted trees trained (in the scan's phase, at either end)
    assert all(LIBRARY_LISTENERS in {q.split()[0] for q in p} for p, _, _ in outside), outside
