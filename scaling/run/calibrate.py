"""Calibration runs: start an engine at each worker count and measure, with empty or synthetic
work only, what the cost model's constants are fitted from (:mod:`scaling.model.calibration`
says what each is and how it is fitted)."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable

import numpy as np

from scaling.data import Blobs
from scaling.engines.worker import noop_combine
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


STRAGGLE_ROUNDS = 5
"""Equal tasks each worker times in a row for the straggle: one round of 8 read 0.23 in one
calibration of a scale model and 0.82 in the next (a machine's throttle in one task)."""


def _roofline(part, seconds: float) -> tuple[float, float, list[float]]:
    """GEMM flop/s and read bandwidth of this core, and how long each of
    :data:`STRAGGLE_ROUNDS` equal tasks took."""
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
        tasks = []  # equal tasks on every worker: the straggle
        for _ in range(STRAGGLE_ROUNDS):
            t2 = time.perf_counter()
            for _ in range(20):
                a @ a
            tasks.append(time.perf_counter() - t2)
        return gemm, max(reads), tasks


def _mesh_times(ctx, parts, sizes: tuple[int, ...], repeat: int) -> dict[int, float]:
    """Median seconds of an all-reduce of each size, inside the gang (rank 0's clock)."""
    from scaling.collectives.allreduce import Mesh

    mesh = Mesh(ctx, timeout=60)
    try:
        return _timed_allreduces(mesh.allreduce, sizes, repeat)
    finally:
        mesh.close()


def _timed_allreduces(allreduce: Callable, sizes: tuple[int, ...], repeat: int) -> dict:
    """Median seconds of ``allreduce(buffer)`` for a float64 buffer of each size, after two
    warm-up calls; each call after :data:`TASK_SECONDS` of products on every member, as a
    job's steps call it, after computing: a scale model's machine that has spent its CPU
    quota waits for its next period, and the others for it (``barrier.md``), at every one of
    a ring's 2 (p - 1) steps where it does."""
    out = {}
    for size in sizes:
        buf = np.ones(max(size // 8, 1))
        walls = []
        for _ in range(repeat + 2):
            _products(TASK_SECONDS)
            t0 = time.perf_counter()
            allreduce(buf)
            walls.append(time.perf_counter() - t0)
        out[size] = statistics.median(walls[2:])
    return out


def _products(seconds: float) -> None:
    """``seconds`` of 256 x 256 matrix products on one thread (this clock's seconds)."""
    from threadpoolctl import threadpool_limits

    a = np.ones((256, 256))
    with threadpool_limits(1):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ a


def _xgboost_times(ctx, parts, backend, started, sizes: tuple[int, ...], repeat: int) -> dict:
    """XGBoost's own all-reduce (its ring, the histograms' transport) at each size."""
    from xgboost import collective

    with backend.member(ctx, started, 60):
        return _timed_allreduces(
            lambda b: collective.allreduce(b, collective.Op.SUM), sizes, repeat
        )


def _gloo_times(ctx, parts, backend, started, sizes: tuple[int, ...], repeat: int) -> dict:
    """torch's gloo all-reduce (SGD's gradients' transport) at each size."""
    import torch

    with backend.member(ctx, started, 60) as group:
        return _timed_allreduces(
            lambda b: group.wait(group.allreduce(torch.from_numpy(b))), sizes, repeat
        )


HISTOGRAM_FEATURES = (1, 16, 128, 512)
"""Features of the data LightGBM's transport is timed with: a histogram of 255 bins of 16 B
per feature, 4 kB to 2 MB (a boosted-tree job's histograms are 16 to 64 features here)."""

LIGHTGBM_ROWS = 1024
"""Rows per member in those rounds: so few that the round is mostly its messages, enough for
every feature's 255 bins to be filled."""


def _lightgbm_times(ctx, parts, backend, started, features: tuple[int, ...], repeat: int):
    """LightGBM's own transport, which has no collective to call from Python: a data-parallel
    round of one split (the root's histogram reduce-scattered, the best splits all-gathered)
    on :data:`LIGHTGBM_ROWS` rows per member, less the same round trained alone, by the
    histogram's bytes."""
    rng = np.random.default_rng(ctx.rank)
    params = {"objective": "regression", "tree_learner": "data", "num_leaves": 2,
              "max_bin": 255, "min_data_in_bin": 1, "min_data_in_leaf": 1, "num_threads": 1,
              "verbose": -1}  # fmt: skip
    out = {}
    for f in features:
        x, y = rng.standard_normal((LIGHTGBM_ROWS, f)), rng.standard_normal(LIGHTGBM_ROWS)
        alone = _round_seconds(x, y, params, repeat)
        with backend.member(ctx, started, 60) as network:
            together = _round_seconds(x, y, params | network, repeat)
        out[f * 255 * 16] = max(together - alone, 0.0)
    return out


def _round_seconds(x, y, params: dict, repeat: int) -> float:
    """The median time of a boosting round of ``lightgbm.train``, after two. Not after work
    (:func:`_timed_allreduces`): a tree calls LightGBM's network for every split, mostly after
    a small leaf's histograms, and timed after 10 ms of products each round priced a tree's
    messages at 3-4x what they took on a scale model."""
    import lightgbm as lgb

    ticks: list[float] = []

    def tick(env) -> None:
        ticks.append(time.perf_counter())

    lgb.train(params, lgb.Dataset(x, y), repeat + 3, callbacks=[tick])
    return statistics.median(b - a for a, b in itertools.pairwise(ticks[2:]))


def _library_times(engine, ds, repeat: int) -> dict[str, dict[str, float]]:
    """The libraries' own transports, timed by message size in a gang on this engine, by the
    transport name the jobs' steps give them (:attr:`scaling.model.steps.Step.transport`):
    XGBoost's and torch's all-reduces called at each size, LightGBM's in its rounds."""
    from scaling.collectives import run_gang
    from scaling.collectives.lightgbm import LightGBMBackend
    from scaling.collectives.torch import TorchBackend
    from scaling.collectives.xgboost import XGBoostBackend

    out = {}
    for name, backend, fn, sizes in (
        ("xgboost", XGBoostBackend(), _xgboost_times, PEER_SIZES),
        ("gloo", TorchBackend(), _gloo_times, PEER_SIZES),
        ("lightgbm", LightGBMBackend(), _lightgbm_times, HISTOGRAM_FEATURES),
    ):
        times = run_gang(engine, ds, backend, fn, sizes, repeat)[0]
        out[name] = {str(m): t for m, t in times.items()}
    return out


def empty_loop(steps, iterations: int) -> int:
    """An all-reduce loop that computes nothing: one number per worker, summed (run it with
    :func:`scaling.execution.execute`; its iterations are the gang's own cost)."""
    from scaling.execution import add

    for _ in range(iterations):
        with steps.iteration():
            steps.map_reduce(_zero, add)
    return iterations


TASK_SECONDS = 0.01
"""How long the tasks of the calibration's empty call take (then taken off): a step's own
cost is that of tasks that run a while. Dask answers a task of under 5 ms 5 ms later than
one of 5 ms or more (10.7 ms against 5.7 ms per call at 1 worker, median of 40): a no-op's
call cost twice what a real step pays."""


def _waits(part, seconds: float) -> None:
    time.sleep(seconds)


def empty_calls(engine, ds, repeat: int) -> list[float]:
    """The cost of ``repeat`` map-reduce calls beyond their tasks' time (the trace's wall less
    its compute: the busiest worker's, whether the engine runs its tasks side by side or one
    after another), tasks of :data:`TASK_SECONDS` each, after one warm-up call."""
    engine.map_reduce(ds, _waits, noop_combine, TASK_SECONDS)
    out = []
    for _ in range(repeat):
        engine.map_reduce(ds, _waits, noop_combine, TASK_SECONDS)
        call = engine.trace.calls[-1]
        out.append(call.wall - call.compute)
    return out


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


def spread(values: list[float]) -> float:
    """How far apart the quartiles of ``values`` are, over twice their median: the relative
    half-width the cost model's interval takes for them (0 for fewer than 3)."""
    if len(values) < 3:
        return 0.0
    q1, median, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / (2 * median) if median > 0 else 0.0


def measure(engine, repeat: int = 15) -> dict:
    """Every calibration point on one running engine (``engine.workers`` workers)."""
    from scaling.execution import execute

    p = engine.workers
    ds = engine.load(Blobs(rows=256 * p, features=4, centers=2, seed=0), partitions=p)
    try:
        walls = empty_calls(engine, ds, repeat)
        empty = statistics.median(walls)
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
        peer, libraries = {}, {}
        if p > 1:
            times = engine.gang(ds, _mesh_times, PEER_SIZES, repeat)[0]
            peer = {str(m): t for m, t in times.items()}
            libraries = _library_times(engine, ds, repeat)
        roof = engine.map(ds, _roofline, 0.3)
    finally:
        engine.release(ds)
    # per round, the slowest worker's task beyond the median one's; the median round
    rounds = [
        (max(ts) - statistics.median(ts)) / statistics.median(ts)
        for ts in zip(*(r[2] for r in roof), strict=True)
    ]
    return {
        "workers": p,
        "empty_call": empty,
        "empty_spread": spread(walls),
        "up": up,
        "down": down,
        "gang_iteration": gang,
        "peer": peer,
        "libraries": libraries,
        "gemm": statistics.median(r[0] for r in roof),
        "bandwidth": statistics.median(r[1] for r in roof),
        "straggle": statistics.median(rounds),
    }


def calibrate(
    engine_name: str,
    workers: list[int],
    *,
    make: Callable | None = None,
    repeat: int = 15,
    say: Callable[[str], None] = lambda line: None,
    dilation: float = 1.0,
) -> Calibration:
    """Start ``engine_name`` at each of ``workers`` and measure it (:func:`measure`, :func:`fit`).

    ``make(name, p)`` starts an engine (default :func:`scaling.engines.make_engine`), or
    connects to one: on a scale model slowed by ``dilation``, the constants are its modelled
    cluster's.
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
    return fit(engine_name, version, points, dilation)
