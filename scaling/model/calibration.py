"""What an engine costs on this host, measured once and kept: the cost model's constants.

``scaling calibrate ENGINE`` (or the first ``scaling predict`` on an engine) starts the engine
at each worker count asked for and measures, with empty or synthetic work only:

- the **empty call** of a driver loop (a map-reduce that computes and ships nothing) at each
  p, fitted as ``a + b p``; and the **empty iteration** of a gang (an all-reduce of one
  number, timed by the workers);
- three **links**, each a latency ``alpha`` and a cost per byte ``beta``: workers to driver
  (a map-reduce of arrays up the combine tree: the ``tree`` pattern), driver to workers (a
  broadcast each worker reads: ``scatter``), and worker to worker (the all-reduce mesh at
  several sizes, timed inside the members). The driver links' latencies are part of the
  empty call, so only their ``beta`` is fitted;
- the **roofline** of one core, inside the workers: GEMM flop/s and memory bandwidth (a sum
  over an array much larger than the caches); and the **straggle** of equal tasks across the
  workers, (max - median) / median of their times.

Each fit is least squares over the medians of ``repeat`` calls per point. The calibration is
stored as ``<store>/calibration/<engine>.json`` (atomically) and reused while the host and the
versions it was measured with are the same.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from scaling.collectives.allreduce import allreduce_bytes
from scaling.data import Blobs
from scaling.engines.worker import noop, noop_combine
from scaling.errors import UsageError
from scaling.model.costmodel import Link, busiest_bytes, hops
from scaling.results import atomic_write
from scaling.run.runner import host_facts, versions

SIZES = (0, 1 << 18, 1 << 21, 1 << 23)
"""Payloads (bytes per worker) the links are timed with: 0, 256 kB, 2 MB, 8 MB."""

PEER_SIZES = (8, 1 << 16, 1 << 20, 1 << 23)
"""All-reduce payloads the peer link is timed with: both algorithms of the mesh."""


@dataclass(frozen=True)
class Calibration:
    """One engine's measured constants on one host (seconds, bytes, flop/s)."""

    engine: str
    host: dict
    versions: dict
    measured_at: str
    workers: list[int]
    call: tuple[float, float]  # the empty driver-loop call: a + b p seconds
    gang_iteration: float  # the empty all-reduce iteration
    up: Link
    down: Link
    peer: Link
    gemm: float  # flop/s of one core
    bandwidth: float  # bytes/s one core reads
    straggle: float
    points: dict = field(default_factory=dict)  # what the fits were made from

    def call_overhead(self, workers: int) -> float:
        a, b = self.call
        return max(a + b * workers, 0.0)

    def link(self, pattern: str) -> Link:
        return {"tree": self.up, "scatter": self.down}.get(pattern, self.peer)

    def roofline(self, flops: float, reads: float) -> float:
        """Seconds one core takes: its flops at the GEMM rate plus the bytes it reads at the
        memory bandwidth. The sum, not the roofline's max: a step's kernels run one after
        another (a BLAS product, then passes over memory), not fused into one that overlaps
        them."""
        return flops / self.gemm + reads / self.bandwidth

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        d = json.loads(text)
        for name in ("up", "down", "peer"):
            d[name] = Link(**d[name])
        d["call"] = tuple(d["call"])
        return cls(**d)


def path_for(store: str | Path, engine: str) -> Path:
    return Path(store) / "calibration" / f"{engine}.json"


def load(store: str | Path, engine: str, engine_version: str | None = None) -> Calibration | None:
    """The stored calibration of ``engine`` if it was measured on this host (and with this
    engine version, when given); None otherwise."""
    path = path_for(store, engine)
    if not path.is_file():
        return None
    try:
        cal = Calibration.from_json(path.read_text())
    except (ValueError, TypeError, KeyError):
        return None  # another layout: measure again
    here = host_facts()
    if any(cal.host.get(k) != here[k] for k in ("hostname", "cores", "cpu")):
        return None
    if engine_version is not None and cal.versions.get(engine) != engine_version:
        return None
    return cal


def save(store: str | Path, cal: Calibration) -> Path:
    path = path_for(store, cal.engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (cal.to_json() + "\n").encode())
    return path


# ------------------------------------------------------------------ what the workers run


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


# ------------------------------------------------------------------ measuring


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


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least squares through the origin: y = slope x."""
    den = sum(x * x for x in xs)
    return max(sum(x * y for x, y in zip(xs, ys, strict=True)) / den, 0.0) if den else 0.0


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


def fit(engine_name: str, engine_version: str, points: list[dict]) -> Calibration:
    """The calibration from :func:`measure`'s points at one or more worker counts."""
    ps = [pt["workers"] for pt in points]
    calls = [pt["empty_call"] for pt in points]
    if len(set(ps)) > 1:
        # Exact at the counts measured; the intercept may come out negative (at 2 workers on 2
        # cores the driver queues for a core too), which only the line's extension uses.
        b, a = np.polyfit(ps, calls, 1)
        call = (float(a), float(max(b, 0.0)))
    else:
        call = (float(calls[0]), 0.0)
    xs_up, ys_up, xs_down, ys_down = [], [], [], []
    for pt in points:
        p = pt["workers"]
        for m, t in pt["up"].items():
            xs_up.append(busiest_bytes("tree", p, int(m)))
            ys_up.append(t - pt["up"]["0"])
        for m, t in pt["down"].items():
            xs_down.append(busiest_bytes("scatter", p, int(m)))
            ys_down.append(t - pt["down"]["0"])
    peer = Link(0.0, 0.0)
    rows = [
        (hops("allreduce", pt["workers"], int(m)), allreduce_bytes(int(m), pt["workers"]), t)
        for pt in points
        for m, t in pt["peer"].items()
    ]
    if rows:
        # The latency from the smallest message alone (a least-squares intercept would be
        # the large messages' noise), then the cost per byte of what is left.
        smallest = [t / h for h, s, t in rows if s <= 8 * h]
        alpha = statistics.median(smallest) if smallest else 0.0
        beta = _slope([s for _, s, _ in rows], [t - h * alpha for h, _, t in rows])
        peer = Link(float(alpha), beta)
    widest = max(points, key=lambda pt: pt["workers"])
    return Calibration(
        engine=engine_name,
        host=host_facts(),
        versions=versions(engine_name, engine_version),
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        workers=sorted(set(ps)),
        call=call,
        gang_iteration=float(statistics.median(pt["gang_iteration"] for pt in points)),
        up=Link(0.0, _slope(xs_up, ys_up)),
        down=Link(0.0, _slope(xs_down, ys_down)),
        peer=peer,
        gemm=float(statistics.median(pt["gemm"] for pt in points)),
        bandwidth=float(statistics.median(pt["bandwidth"] for pt in points)),
        straggle=float(max(widest["straggle"], 0.0)) if widest["workers"] > 1 else 0.0,
        points={str(pt["workers"]): pt for pt in points},
    )


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
