"""The Engine contract: data cached on workers, map, tree map-reduce, broadcast, gang.

An engine owns ``workers`` single-core worker processes. :meth:`Engine.load` makes each
worker read its own partitions, which then stay cached there; the driver ships only small
things (functions, centres, weights) and receives small things (partial sums, gradients).

Subclasses implement six hooks (``_start``, ``_load``, ``_run``, ``_broadcast``, ``_gang``,
``_stop``); this class validates arguments, wraps framework failures into
:class:`~scaling.errors.EngineError`, and records every call in :attr:`Engine.trace`.
The worker-side functions below (:func:`load_parts`, :func:`run_parts`,
:func:`combine_outs`) are shared by all engines so that every engine computes and measures
exactly the same thing.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np

from scaling.data import Part, Source, partition_bounds
from scaling.errors import DataError, EngineError, ScalingError, UsageError
from scaling.trace import Call, Trace, payload_bytes

THREAD_ENV = {
    name: "1"
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    )
}
"""One BLAS/OpenMP thread per worker: a p-worker run must use p cores, not p x cores."""

DTYPES = ("float64", "float32")


# --------------------------------------------------------------------------- worker side


@dataclass(frozen=True)
class PartSpec:
    """What a worker needs to materialise partition ``index``: rows ``[start, stop)``."""

    index: int
    source: Source
    start: int
    stop: int


@dataclass
class TaskOut:
    """A task's result with what it cost: compute seconds per worker and bytes sent back.

    ``empty`` marks a combine result of a worker that holds no partition (more workers than
    partitions): combining skips it.
    """

    value: Any
    compute: dict[str, float]
    nbytes: int
    empty: bool = False


@dataclass(frozen=True)
class LoadStat:
    index: int
    rows: int
    nonfinite: int
    error: str | None = None


Loaded = tuple[Any, list[LoadStat]]
"""What an engine's ``_load`` returns: its handle on the cached partitions, and their stats."""


@dataclass(frozen=True)
class GangContext:
    """What each gang member is told: its rank, the world size and where to meet."""

    rank: int
    world: int
    host: str
    port: int


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_pinned = False


def pin_threads() -> None:
    """Limit this process to one BLAS/OpenMP thread (idempotent, cheap after the first call)."""
    global _pinned
    if not _pinned:
        os.environ.update(THREAD_ENV)
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        _pinned = True


def load_part(spec: PartSpec, dtype: str) -> tuple[Part | None, LoadStat]:
    """Read one partition and check it; errors come back as data, not exceptions."""
    try:
        X, y = spec.source.read(spec.start, spec.stop)
        X = np.ascontiguousarray(X, dtype=dtype)
        nonfinite = int(X.size - np.count_nonzero(np.isfinite(X)))
        if y is not None and np.issubdtype(np.asarray(y).dtype, np.floating):
            nonfinite += int(np.count_nonzero(~np.isfinite(y)))
    except Exception as e:
        return None, LoadStat(spec.index, 0, 0, f"{type(e).__name__}: {e}")
    return Part(X, y, spec.start, spec.index), LoadStat(spec.index, len(X), nonfinite)


def load_parts(specs: Sequence[PartSpec], dtype: str) -> tuple[dict[int, Part], list[LoadStat]]:
    pin_threads()
    parts, stats = {}, []
    for spec in specs:
        part, stat = load_part(spec, dtype)
        stats.append(stat)
        if part is not None:
            parts[spec.index] = part
    return parts, stats


def run_parts(
    parts: dict[int, Part], fn: Callable, args: tuple, combine: Callable | None
) -> TaskOut:
    """Apply ``fn(part, *args)`` to each partition; fold with ``combine`` when given.

    Without ``combine`` the value is ``[(index, result), ...]``; with it, one combined value.
    """
    pin_threads()
    t0 = time.perf_counter()
    results = [(i, fn(parts[i], *args)) for i in sorted(parts)]
    if combine is None:
        value: Any = results
    elif not results:
        return TaskOut(None, {}, 0, empty=True)
    else:
        value = results[0][1]
        for _, r in results[1:]:
            value = combine(value, r)
    return TaskOut(value, {worker_id(): time.perf_counter() - t0}, payload_bytes(value))


def combine_outs(combine: Callable, a: TaskOut, b: TaskOut) -> TaskOut:
    """One node of a combine tree: merge two partial results where ``a`` lives."""
    if a.empty or b.empty:
        return b if a.empty else a
    t0 = time.perf_counter()
    value = combine(a.value, b.value)
    compute = dict(a.compute)
    for w, s in b.compute.items():
        compute[w] = compute.get(w, 0.0) + s
    me = worker_id()
    compute[me] = compute.get(me, 0.0) + time.perf_counter() - t0
    return TaskOut(value, compute, a.nbytes + b.nbytes)


def tree_reduce(items: list, pair: Callable[[Any, Any], Any]) -> Any:
    """Combine ``items`` pairwise, level by level: log2(len(items)) levels deep."""
    while len(items) > 1:
        items = [
            pair(items[i], items[i + 1]) if i + 1 < len(items) else items[i]
            for i in range(0, len(items), 2)
        ]
    return items[0]


def _noop(part: Part) -> None:
    return None


def _noop_combine(a: None, b: None) -> None:
    return None


# --------------------------------------------------------------------------- driver side


@dataclass(frozen=True)
class Dataset:
    """A dataset cached on an engine's workers (a handle; the data stays on the workers)."""

    uid: str
    rows: int
    features: int
    partitions: int
    dtype: str
    labelled: bool
    native: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class Broadcast:
    """A value shipped once to every worker; pass it as an argument to map or map_reduce."""

    native: Any = field(repr=False)
    nbytes: int


class Engine(ABC):
    """A pool of ``workers`` processes that hold data and run tasks next to it.

    Parameters
    ----------
    workers : int
        Number of single-core worker processes (>= 1).
    address : str, optional
        Address of a running cluster to connect to; ``None`` starts an embedded local cluster
        that :meth:`close` shuts down.

    Notes
    -----
    Engines are context managers. Every call is recorded in :attr:`trace`.
    """

    name: ClassVar[str]
    framework: ClassVar[str | None] = None
    """The distribution that provides this engine's framework (for versions in run records)."""
    address_schemes: ClassVar[tuple[str, ...]] = ()
    gang_timeout: ClassVar[float] = 600.0

    def __init__(self, workers: int = 1, address: str | None = None) -> None:
        if not isinstance(workers, int | np.integer) or workers < 1:
            raise UsageError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = int(workers)
        self.address = address
        self.trace = Trace()
        self._closed = True
        if address is not None:
            check_reachable(self.name, address, self.address_schemes)
        self._guard("start", self._start)
        self._closed = False
        # The driver only ships and updates small things while the engine is open. A
        # multi-threaded BLAS there (an L-BFGS step, say) leaves its threads spin-waiting after
        # each call, on the cores the workers need: logistic regression's tasks took 43 ms
        # instead of 24 ms on 2 cores. Restored by close().
        from threadpoolctl import threadpool_limits

        self._driver_threads = threadpool_limits(1)

    # -- the hooks each engine implements ------------------------------------------------

    @abstractmethod
    def _start(self) -> None:
        """Start the embedded cluster or connect to ``self.address``."""

    @abstractmethod
    def _load(self, uid: str, specs: list[list[PartSpec]], dtype: str) -> Loaded:
        """Make worker ``w`` read ``specs[w]`` and cache them; return a handle and the stats."""

    @abstractmethod
    def _run(
        self, ds: Dataset, fn: Callable, args: tuple, combine: Callable | None
    ) -> TaskOut | list[TaskOut]:
        """:func:`run_parts` on every worker; tree-combine into one TaskOut when ``combine``."""

    @abstractmethod
    def _broadcast(self, value: Any) -> Any:
        """Ship ``value`` once to every worker; return the native handle."""

    @abstractmethod
    def _gang(
        self, ds: Dataset, fn: Callable, ctxs: list[GangContext], args: tuple, timeout: float
    ) -> list:
        """Run ``fn(ctx, parts, *args)`` on all workers at once; results in rank order."""

    @abstractmethod
    def _stop(self) -> None:
        """Shut the embedded cluster down, or disconnect."""

    def _release(self, ds: Dataset) -> None:  # noqa: B027 - optional hook, default keeps data
        """Drop a dataset's cached partitions (default: left to the framework's GC)."""

    def _is_worker_lost(self, error: BaseException) -> bool:
        """Whether a framework error means a worker process died (for the error message)."""
        return False

    def _error_summary(self, error: BaseException) -> str:
        """One line that says what went wrong, for error messages."""
        return _first_line(error)

    @property
    def worker_memory(self) -> int:
        """Bytes one worker may use: an equal share of this machine's memory, unless the
        framework sets a per-worker limit (Dask)."""
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // self.workers

    @property
    def rendezvous_host(self) -> str:
        """The driver's address as the workers reach it (where gangs meet, and trackers run)."""
        return "127.0.0.1" if self.address is None else _driver_host()

    @property
    def version(self) -> str:
        """Version of the framework behind this engine."""
        return metadata.version(self.framework) if self.framework else "builtin"

    # -- the contract ------------------------------------------------------------------

    def load(
        self, source: Source, partitions: int | None = None, dtype: str = "float64"
    ) -> Dataset:
        """Make every worker read and cache its own partitions of ``source``.

        Partition ``i`` (a contiguous row range) goes to worker ``i % workers``.

        Raises
        ------
        DataError
            When a partition cannot be read or contains NaN or infinite values.
        """
        self._check_open()
        partitions = self.workers if partitions is None else partitions
        if not isinstance(partitions, int) or partitions < 1:
            raise UsageError(f"partitions must be an integer >= 1, got {partitions!r}")
        if partitions > source.rows:
            raise UsageError(
                f"{partitions} partitions for {source.rows} rows; use at most one partition per row"
            )
        if dtype not in DTYPES:
            raise UsageError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        bounds = partition_bounds(source.rows, partitions)
        specs: list[list[PartSpec]] = [[] for _ in range(self.workers)]
        for i, (a, b) in enumerate(bounds):
            specs[i % self.workers].append(PartSpec(i, source, a, b))
        uid = uuid.uuid4().hex[:12]
        t0 = time.perf_counter()
        native, stats = self._guard("load", self._load, uid, specs, dtype)
        ds = Dataset(uid, source.rows, source.features, partitions, dtype, source.labelled, native)
        self.trace.record(
            Call("load", time.perf_counter() - t0, 0.0, payload_bytes(specs), 0, partitions)
        )
        self._check_loaded(ds, stats, bounds)
        if not self.trace.latency:
            self._calibrate(ds)
        return ds

    def map(self, ds: Dataset, fn: Callable, *args: Any) -> list:
        """``[fn(part, *args) for each partition]``, computed where the partitions live.

        Returns the results in partition order.
        """
        outs = self._call("map", ds, fn, args, None)
        results = sorted((pair for out in outs for pair in out.value), key=lambda p: p[0])
        return [r for _, r in results]

    def map_reduce(self, ds: Dataset, fn: Callable, combine: Callable, *args: Any) -> Any:
        """Map, then combine the partial results on the workers (a tree); one value back.

        ``combine(a, b)`` must be associative and commutative (a sum, typically).
        """
        return self._call("map_reduce", ds, fn, args, combine).value

    def broadcast(self, value: Any) -> Broadcast:
        """Ship ``value`` once to every worker, for use as an argument in later calls."""
        self._check_open()
        t0 = time.perf_counter()
        native = self._guard("broadcast", self._broadcast, value)
        nbytes = payload_bytes(value)
        self.trace.record(
            Call("broadcast", time.perf_counter() - t0, 0.0, nbytes * self.workers, 0, self.workers)
        )
        return Broadcast(native, nbytes)

    def gang(self, ds: Dataset, fn: Callable, *args: Any, timeout: float | None = None) -> list:
        """Run ``fn(ctx, parts, *args)`` on every worker *at the same time*.

        Each member gets a :class:`GangContext` (rank, world size and a rendezvous address) and
        the list of its cached partitions, for libraries that bring their own collectives.
        Returns the results in rank order.

        Raises
        ------
        EngineError
            When the gang does not finish within ``timeout`` seconds (a member died or never
            joined) or a member fails.
        """
        self._check_open()
        timeout = self.gang_timeout if timeout is None else timeout
        host = self.rendezvous_host
        port = free_port(host)
        ctxs = [GangContext(r, self.workers, host, port) for r in range(self.workers)]
        t0 = time.perf_counter()
        results = self._guard("gang", self._gang, ds, fn, ctxs, args, timeout)
        self.trace.record(
            Call(
                "gang",
                time.perf_counter() - t0,
                0.0,
                payload_bytes(args) * self.workers,
                payload_bytes(results),
                self.workers,
            )
        )
        return results

    def release(self, ds: Dataset) -> None:
        """Free the workers' copies of ``ds``."""
        if not self._closed:
            self._guard("release", self._release, ds)

    def close(self) -> None:
        """Release every worker (shuts an embedded cluster down); safe to call twice."""
        if not self._closed:
            self._closed = True
            self._driver_threads.restore_original_limits()
            self._stop()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.address or "embedded"
        return f"{type(self).__name__}(workers={self.workers}, address={where!r})"

    # -- helpers -----------------------------------------------------------------------

    def _call(self, op: str, ds: Dataset, fn: Callable, args: tuple, combine: Callable | None):
        self._check_open()
        t0 = time.perf_counter()
        native_args = tuple(a.native if isinstance(a, Broadcast) else a for a in args)
        out = self._guard(op, self._run, ds, fn, native_args, combine)
        wall = time.perf_counter() - t0
        outs = out if isinstance(out, list) else [out]
        per_worker: dict[str, float] = {}
        for o in outs:
            for w, s in o.compute.items():
                per_worker[w] = per_worker.get(w, 0.0) + s
        shipped = sum(payload_bytes(a) for a in args if not isinstance(a, Broadcast))
        tasks = min(self.workers, ds.partitions)
        self.trace.record(
            Call(
                op,
                wall,
                max(per_worker.values(), default=0.0),
                shipped * tasks,
                sum(o.nbytes for o in outs),
                tasks,
            )
        )
        return out

    def _calibrate(self, ds: Dataset, repeats: int = 5) -> None:
        """Measure what an empty call costs here: the per-call overhead of this engine."""
        latency = {}
        for op, combine in (("map", None), ("map_reduce", _noop_combine)):
            walls = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                self._guard(op, self._run, ds, _noop, (), combine)
                walls.append(time.perf_counter() - t0)
            latency[op] = statistics.median(walls)
        self.trace.latency.update(latency)

    def _check_loaded(
        self, ds: Dataset, stats: list[LoadStat], bounds: list[tuple[int, int]]
    ) -> None:
        for s in sorted(stats, key=lambda s: s.index):
            a, b = bounds[s.index]
            if s.error or s.nonfinite:
                self.release(ds)
            if s.error:
                raise DataError(
                    f"cannot read rows {a}-{b} (partition {s.index}): {s.error}; "
                    "check that the file is complete and its columns numeric"
                )
            if s.nonfinite:
                raise DataError(
                    f"the data has {s.nonfinite} NaN or infinite values in rows "
                    f"{a}-{b} (partition {s.index}); drop or impute them first"
                )

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError(f"the {self.name} engine is closed; create a new one")

    def _guard(self, op: str, fn: Callable, *args: Any) -> Any:
        """Run a hook; turn framework failures into one clear EngineError."""
        try:
            return fn(*args)
        except ScalingError:
            raise
        except Exception as e:
            what = self._error_summary(e)
            if self._is_worker_lost(e):
                raise EngineError(
                    f"a {self.name} worker died during {op} ({type(e).__name__}: {what}); its "
                    "cached partitions are lost. Rerun the job (results already written are "
                    "intact); if workers run out of memory, use more workers or fewer rows"
                ) from e
            raise EngineError(f"{self.name} {op} failed: {type(e).__name__}: {what}") from e


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else "(no message)"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _driver_host() -> str:
    return os.environ.get("SCALING_DRIVER_HOST", socket.gethostbyname(socket.gethostname()))


def check_reachable(
    engine: str, address: str, schemes: tuple[str, ...], timeout: float = 3.0
) -> None:
    """Fail fast, with a fix, when nothing listens at a cluster address."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    if "://" in address and parts.scheme not in schemes:
        raise UsageError(
            f"{engine} address {address!r} has scheme {parts.scheme!r}; "
            f"use one of {', '.join(s + '://' for s in schemes)}"
        )
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise UsageError(
            f"{engine} address {address!r} needs a host and a port, "
            f"e.g. {schemes[0]}://127.0.0.1:PORT"
        )
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise EngineError(
            f"cannot reach a {engine} cluster at {address} ({e.strerror or e}); start one "
            f"(see cluster/README.md) or omit --address to start an embedded local cluster"
        ) from e
