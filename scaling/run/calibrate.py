"""Calibration runs: start an engine at each worker count and measure, with empty or synthetic
work only, what the cost model's constants are fitted from (:mod:`scaling.model.calibration`
says what each is and how it is fitted)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from scaling.data import Blobs
from scaling.engines.worker import noop, noop_combine
from scaling.errors import UsageError
from scaling.model.calibration import Calibration, fit

SIZES = (0, 1 << 18, 1 << 21, 1 << 23)
"""Payloads (bytes per worker) the links are timed with: 0, 256 kB, 2 MB, 8 MB."""


PEER_SIZES = (8, 1 << 16, 1 << 20, 1 << 23)
"""All-reduce payloads the peer link is timed with: both algorithms of the mesh."""


def _payload(part, nbytes: int) -> np.ndarray:
    return np.zeros(nbytes // 8)


def _sum_arrays(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a + b


def _read(part, value: np.ndarray) -> float:
    return float(value[:1].sum()) if value.size else 0.0


def _roofline(part, seconds: float) -> tuple[float, float, float]:
    """GEMM flop/s and read bandwidth of this core, and how long an equal task took."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        a = np.random.default_rng(0).standard_normal((256, 256))
        a @ a  # warm
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ a
            n += 1
        gemm = n * 2 * 256**3 / (time.perf_counter() - t0)
        big = np.ones(1 << 24)  # 128 MB, far past the caches
        big.sum()
        reads = []
        for _ in range(3):
            t1 = time.perf_counter()
            big.sum()
            reads.append(big.nbytes / (time.perf_counter() - t1))
        t2 = time.perf_counter()  # an equal task on every worker: the straggle
        for _ in range(20):
            a @ a
        return gemm, max(reads), time.perf_counter() - t2


def _mesh_times(ctx, parts, sizes: tuple[int, ...], repeat: int) -> dict[int, float]:
    """Median seconds of an all-reduce of each size, inside the gang (rank 0's clock)."""
    from scaling.collectives.allreduce import Mesh

    mesh = Mesh(ctx, timeout=60)
    try:
        out = {}
        for size in sizes:
            buf = np.ones(max(size // 8, 1))
            walls = []
            for _ in range(repeat + 2):
                t0 = time.perf_counter()
                mesh.allreduce(buf)
                walls.append(time.perf_counter() - t0)
            out[size] = statistics.median(walls[2:])
        return out
    finally:
        mesh.close()


def empty_loop(steps, iterations: int) -> int:
    """An all-reduce loop that computes nothing: one number per worker, summed (run it with
    :func:`scaling.execution.execute`; its iterations are the gang's own cost)."""
    from scaling.execution import add

    for _ in range(iterations):
        with steps.iteration():
            steps.map_reduce(_zero, add)
    return iterations


def _zero(part) -> float:
    return 0.0


def median_seconds(call: Callable[[], object], repeat: int, warm: int = 1) -> float:
    """The median wall time of ``repeat`` calls, after ``warm`` calls (first-call imports and
    connections are not the steady state)."""
    for _ in range(warm):
        call()
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def measure(engine, repeat: int = 15) -> dict:
    """Every calibration point on one running engine (``engine.workers`` workers)."""
    from scaling.execution import execute

    p = engine.workers
    ds = engine.load(Blobs(rows=256 * p, features=4, centers=2, seed=0), partitions=p)
    try:
        empty = median_seconds(lambda: engine.map_reduce(ds, noop, noop_combine), repeat)
        # Sizes as strings: the keys JSON keeps.
        up = {}
        for m in SIZES:
            up[str(m)] = median_seconds(
                lambda m=m: engine.map_reduce(ds, _payload, _sum_arrays, m), repeat
            )
        down = {}
        for m in SIZES:
            value = np.zeros(m // 8)
            down[str(m)] = median_seconds(
                lambda v=value: engine.map(ds, _read, engine.broadcast(v)), repeat
            )
        engine.trace.reset()
        execute(engine, ds, "allreduce", empty_loop, 3 + repeat, iteration="empty")
        gang = statistics.median(s["wall"] for s in engine.trace.summaries("empty")[3:])
        peer = {}
        if p > 1:
            times = engine.gang(ds, _mesh_times, PEER_SIZES, repeat)[0]
            peer = {str(m): t for m, t in times.items()}
        roof = engine.map(ds, _roofline, 0.3)
    finally:
        engine.release(ds)
    tasks = [r[2] for r in roof]
    return {
        "workers": p,
        "empty_call": empty,
        "up": up,
        "down": down,
        "gang_iteration": gang,
        "peer": peer,
        "gemm": statistics.median(r[0] for r in roof),
        "bandwidth": statistics.median(r[1] for r in roof),
        "straggle": (max(tasks) - statistics.median(tasks)) / statistics.median(tasks),
    }


def calibrate(
    engine_name: str,
    workers: list[int],
    *,
    make: Callable | None = None,
    repeat: int = 15,
    say: Callable[[str], None] = lambda line: None,
) -> Calibration:
    """Start ``engine_name`` at each of ``workers`` and measure it (:func:`measure`, :func:`fit`).

    ``make(name, p)`` starts an engine (default :func:`scaling.engines.make_engine`).
    """
    if engine_name == "local":
        raise UsageError(
            "the local engine runs its workers one after another in one process: calibrate "
            "and predict ray, dask or spark"
        )
    if make is None:
        from scaling.engines import make_engine as make
    points, version = [], ""
    for p in workers:
        say(f"calibrating {engine_name} at {p} worker{'s' * (p != 1)}")
        with make(engine_name, p) as engine:
            points.append(measure(engine, repeat))
            version = engine.version
    return fit(engine_name, version, points)
