"""The Engine contract: data cached on workers, map, tree map-reduce, broadcast, gang.

An engine owns ``workers`` single-core worker processes. :meth:`Engine.load` makes each
worker read its own partitions, which then stay cached there; the driver ships only small
things (functions, centres, weights) and receives small things (partial sums, gradients).

Subclasses implement seven hooks (``_start``, ``_load``, ``_map``, ``_map_reduce``,
``_broadcast``, ``_gang``, ``_stop``) with the worker-side functions of
:mod:`scaling.engines.worker`, so that every engine computes and measures the same thing; this
class validates arguments, wraps framework failures into :class:`~scaling.errors.EngineError`,
and records every call, with its tasks, in :attr:`Engine.trace`. What it does when a worker
dies or freezes, or its cluster goes away (recovery, deadlines, the failure drill) is
:class:`~scaling.engines.recovery.Recovery`, a part of this class in a file of its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar

import numpy as np

from scaling.data import Source, partition_bounds
from scaling.engines.defaults import DTYPES, MAX_FAILURES, STEP_TIMEOUT, WATCH
from scaling.engines.net import check_reachable, driver_host
from scaling.engines.recovery import Recovery
from scaling.engines.rendezvous import Rendezvous
from scaling.engines.worker import (
    THREAD_ENV,
    GangContext,
    LoadStat,
    PartSpec,
    TaskOut,
    clock,
    noop,
    noop_combine,
)
from scaling.errors import (
    DataError,
    EngineError,
    GangTimeout,
    LostWorker,
    ScalingError,
    UsageError,
    first_line,
)
from scaling.measure.trace import Call, Failure, Trace, payload_bytes

__all__ = ["THREAD_ENV", "Broadcast", "Cached", "Dataset", "Engine", "GangContext", "PartSpec"]

Cached = tuple[Any, list[LoadStat]]
"""What an engine's ``_load`` returns: its handle on the cached partitions, and their stats."""


@dataclass(frozen=True, kw_only=True)
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


class Engine(Recovery, ABC):
    """A pool of ``workers`` processes that hold data and run tasks next to it.

    Parameters
    ----------
    workers : int
        Number of single-core worker processes (>= 1).
    address : str, optional
        Address of a running cluster to connect to; ``None`` starts an embedded local cluster
        that :meth:`close` shuts down.
    step_timeout : float
        Seconds a call may go without an answer before it fails (:data:`STEP_TIMEOUT`).
    max_failures : int
        Lost workers to recover from in a run (:data:`MAX_FAILURES`): a worker that dies
        during a call is replaced, its partitions are re-read from their specs (the lineage
        of the data: a seed and a row range, or a file and a row range) and the call runs
        again, which gives the result an undisturbed run gives, as every step is a function
        of its partition and arguments. Each recovery is kept in ``trace.failures``.

    Attributes
    ----------
    trace : Trace
        Every call of the current run, and its failures.

    Notes
    -----
    Engines are context managers. Every call is recorded in :attr:`trace`.
    """

    name: ClassVar[str]
    framework: ClassVar[str | None] = None
    """The distribution that provides this engine's framework (for versions in run records)."""
    address_schemes: ClassVar[tuple[str, ...]] = ()
    gang_timeout: ClassVar[float] = 600.0

    recovers_itself: ClassVar[bool] = False
    """The framework re-runs a lost task by itself (Spark's lineage), up to ``max_failures``
    more attempts, and reports what it re-read; the engine does not retry a map, map-reduce
    or load on top of it (a gang it does: a failed barrier stage is not run again)."""

    def __init__(
        self,
        workers: int = 1,
        address: str | None = None,
        *,
        step_timeout: float = STEP_TIMEOUT,
        max_failures: int = MAX_FAILURES,
    ) -> None:
        if not isinstance(workers, int | np.integer) or workers < 1:
            raise UsageError(f"workers must be an integer >= 1, got {workers!r}")
        if not step_timeout > 0:
            raise UsageError(f"the step timeout must be > 0 seconds, got {step_timeout!r}")
        if not isinstance(max_failures, int) or max_failures < 0:
            raise UsageError(f"max failures must be an integer >= 0, got {max_failures!r}")
        self.workers = int(workers)
        self.address = address
        self.step_timeout = float(step_timeout)
        self.max_failures = max_failures
        self._held: dict[str, tuple[list[list[PartSpec]], str]] = {}  # specs of cached data
        self.dashboards: dict[str, str] = {}  # web UIs of this run's own, where it has some
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
    def _load(self, uid: str, specs: list[list[PartSpec]], dtype: str) -> Cached:
        """Make worker ``w`` read ``specs[w]`` and cache them; return a handle and the stats."""

    @abstractmethod
    def _map(self, ds: Dataset, fn: Callable, args: tuple) -> list[TaskOut]:
        """:func:`~scaling.engines.worker.run_parts` (no combine) on every worker."""

    @abstractmethod
    def _map_reduce(self, ds: Dataset, fn: Callable, combine: Callable, args: tuple) -> TaskOut:
        """``run_parts`` with ``combine`` on every worker, then
        :func:`~scaling.engines.worker.combine_outs` in a tree on the workers."""

    @abstractmethod
    def _broadcast(self, value: Any) -> Any:
        """Ship ``value`` once to every worker; return the native handle."""

    @abstractmethod
    def _gang(
        self, ds: Dataset, fn: Callable, ctxs: list[GangContext], args: tuple, timeout: float
    ) -> list:
        """``fn(ctx, parts, *args)`` on all workers at once, in rank order; GangTimeout if late."""

    @abstractmethod
    def _stop(self) -> None:
        """Shut the embedded cluster down, or disconnect."""

    def _release(self, ds: Dataset) -> None:
        """Drop a dataset's cached partitions (default: left to the framework's GC)."""

    def _replace_lost(self) -> list[int]:
        """Replace the workers that died with fresh ones; their ranks ([]: none lost, or the
        framework starts new ones itself, whose tasks re-read what they miss: Spark)."""
        raise EngineError(f"the {self.name} engine cannot replace a worker")

    def _reload(self, uid: str, w: int, specs: list[PartSpec], dtype: str) -> list[LoadStat]:
        """Make (replacement) worker ``w`` read ``specs`` of dataset ``uid`` and cache them."""
        raise EngineError(f"the {self.name} engine cannot re-read a worker's partitions")

    def _is_worker_lost(self, error: BaseException) -> bool:
        """Whether a framework error means a worker process died (for the error message)."""
        return False

    def _error_summary(self, error: BaseException) -> str:
        """One line that says what went wrong, for error messages."""
        return first_line(error)

    @property
    def worker_memory(self) -> int:
        """Bytes one worker may use: an equal share of this machine's memory, unless the
        framework sets a per-worker limit (Dask)."""
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // self.workers

    @property
    def rendezvous_host(self) -> str:
        """The driver's address as the workers reach it (where gangs meet, and trackers run)."""
        return "127.0.0.1" if self.address is None else driver_host()

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
            specs[i % self.workers].append(PartSpec(index=i, source=source, start=a, stop=b))
        uid = uuid.uuid4().hex[:12]
        start, t0 = time.time(), time.perf_counter()
        native, stats = self.recovering(
            "load", lambda: self._guard("load", self._load, uid, specs, dtype)
        )
        self._held[uid] = (specs, dtype)
        ds = Dataset(
            uid=uid,
            rows=source.rows,
            features=source.features,
            partitions=partitions,
            dtype=dtype,
            labelled=source.labelled,
            native=native,
        )
        wall = time.perf_counter() - t0
        self.trace.record(
            Call(
                op="load",
                wall=wall,
                compute=0.0,
                bytes_in=payload_bytes(specs),
                bytes_out=0,
                tasks=partitions,
                start=start,
            )
        )
        self._check_loaded(ds, stats, bounds)
        if not self.trace.latency:
            self._calibrate(ds)
        return ds

    def map(self, ds: Dataset, fn: Callable, *args: Any) -> list:
        """``[fn(part, *args) for each partition]``, computed where the partitions live.

        Returns the results in partition order.
        """
        outs = self._call("map", ds, self._map, fn, args)
        results = sorted((pair for out in outs for pair in out.value), key=lambda p: p[0])
        return [r for _, r in results]

    def map_reduce(self, ds: Dataset, fn: Callable, combine: Callable, *args: Any) -> Any:
        """Map, then combine the partial results on the workers (a tree); one value back.

        ``combine(a, b)`` must be associative and commutative (a sum, typically).
        """
        (out,) = self._call("map_reduce", ds, self._map_reduce, fn, args, combine)
        return out.value

    def broadcast(self, value: Any) -> Broadcast:
        """Ship ``value`` once to every worker, for use as an argument in later calls."""
        self._check_open()
        start, t0 = time.time(), time.perf_counter()
        native = self._guard("broadcast", self._broadcast, value)
        nbytes = payload_bytes(value)
        wall = time.perf_counter() - t0
        self.trace.record(
            Call(
                op="broadcast",
                wall=wall,
                compute=0.0,
                bytes_in=nbytes * self.workers,
                bytes_out=0,
                tasks=self.workers,
                start=start,
            )
        )
        return Broadcast(native, nbytes)

    def gang(self, ds: Dataset, fn: Callable, *args: Any, timeout: float | None = None) -> list:
        """Run ``fn(ctx, parts, *args)`` on every worker *at the same time*.

        Each member gets a :class:`GangContext` (rank, world size, the address of the gang's
        :mod:`~scaling.engines.rendezvous` on the driver) and the list of its cached partitions,
        for libraries that bring their own collectives. Returns the results in rank order.

        Raises
        ------
        EngineError
            When the gang does not finish within ``timeout`` seconds (a member died or never
            joined) or a member fails.
        """
        self._check_open()
        timeout = self.gang_timeout if timeout is None else timeout
        start, t0 = time.time(), time.perf_counter()
        with Rendezvous(self.rendezvous_host, self.workers, timeout) as met:
            try:
                results = self._guard("gang", self._gang, ds, fn, met.contexts(), args, timeout)
            except GangTimeout:
                raise met.timed_out() from None
        wall = time.perf_counter() - t0
        shipped = payload_bytes(args) * self.workers
        self.trace.record(
            Call(
                op="gang",
                wall=wall,
                compute=0.0,
                bytes_in=shipped,
                bytes_out=payload_bytes(results),
                tasks=self.workers,
                start=start,
            )
        )
        return results

    def release(self, ds: Dataset) -> None:
        """Free the workers' copies of ``ds``."""
        if not self._closed:
            self._held.pop(ds.uid, None)
            with contextlib.suppress(LostWorker):  # what a dead worker held is gone anyway
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

    def _call(self, op: str, ds: Dataset, hook: Callable, fn: Callable, args: tuple, *combine):
        """Run a map or map-reduce hook; record it with its tasks. Returns its TaskOuts."""
        self._check_open()
        native_args = tuple(a.native if isinstance(a, Broadcast) else a for a in args)
        start, t0 = time.time(), time.perf_counter()
        out = self.recovering(op, lambda: self._guard(op, hook, ds, fn, *combine, native_args))
        wall = time.perf_counter() - t0
        outs = out if isinstance(out, list) else [out]
        if reread := sorted({i for o in outs for i in o.reread}):
            self.trace.failures.append(
                Failure(
                    op=op,
                    error="a task ran where its partitions were not cached",
                    how=f"{self.name} ran it again and it re-read partitions {reread} from their "
                    "specs",
                    detected=None,
                    recovery=None,
                    partitions=tuple(reread),
                )
            )
        per_worker: dict[str, float] = {}
        for o in outs:
            for w, s in o.compute.items():
                per_worker[w] = per_worker.get(w, 0.0) + s
        shipped = sum(payload_bytes(a) for a in args if not isinstance(a, Broadcast))
        tasks = min(self.workers, ds.partitions)
        call = Call(
            op=op,
            wall=wall,
            compute=max(per_worker.values(), default=0.0),
            bytes_in=shipped * tasks,
            bytes_out=sum(o.nbytes for o in outs),
            tasks=tasks,
            start=start,
            events=[e for o in outs for e in o.events],
        )
        self.trace.record(call)
        return outs

    def _calibrate(self, ds: Dataset, repeats: int = 5) -> None:
        """Measure what an empty call costs here (the per-call overhead of this engine), and
        how far each worker's clock is from the driver's (for timelines across hosts)."""
        latency = {}
        for op, hook, extra in (
            ("map", self._map, ()),
            ("map_reduce", self._map_reduce, (noop_combine,)),
        ):
            walls = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                self._guard(op, hook, ds, noop, *extra, ())
                walls.append(time.perf_counter() - t0)
            latency[op] = statistics.median(walls)
        self.trace.latency.update(latency)
        # Cristian's algorithm: a worker's clock read half-way through a call is the driver's
        # at the call's midpoint. Only for workers on other hosts: on this one every process
        # reads the same clock, and a call's round trip (Spark's: ~0.1 s) is a worse estimate.
        here = socket.gethostname()
        t0 = time.time()
        outs = self._guard("map", self._map, ds, clock, ())
        middle = (t0 + time.time()) / 2
        for out in outs:
            for _, (worker, seen) in out.value:
                if worker.rsplit(":", 1)[0] != here:
                    self.trace.clock_offsets[worker] = seen - middle

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
            if self.gone(WATCH):  # first: a cluster that goes away takes its workers with it
                raise self.lost(op, type(e).__name__) from e
            if self._is_worker_lost(e):
                raise LostWorker(
                    f"a {self.name} worker died during {op} ({type(e).__name__}: {what}); its "
                    "cached partitions are lost. Rerun the job (results already written are "
                    "intact); if workers run out of memory, use more workers or fewer rows"
                ) from e
            raise EngineError(f"{self.name} {op} failed: {type(e).__name__}: {what}") from e
