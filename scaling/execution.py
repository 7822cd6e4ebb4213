"""How an iterative job's steps run: a driver loop, or all-reduce inside one gang.

A job writes its loop once, as a function ``loop(steps, *args)`` of :class:`Loop`: it maps
(``steps.map``), map-reduces partial sums (``steps.map_reduce(fn, add_each, ...)``) and applies
its update, one ``with steps.iteration():`` block per iteration. :func:`execute` runs that
same function in one of two styles (Agarwal et al., "A Reliable Effective Terascale Linear
Learning System", JMLR 2014, contrast the two):

- ``driver`` (the MapReduce style, what Spark MLlib and dask-ml do): the loop runs on the
  driver; every ``map_reduce`` is one engine call (tasks, a combine tree on the workers, one
  value back), so every iteration pays the engine's scheduling round trip.
- ``allreduce`` (the AllReduce style of XGBoost, LightGBM, Horovod, Vowpal Wabbit): the loop
  runs on every worker at once, in one :meth:`~scaling.engines.base.Engine.gang` call. A
  ``map_reduce`` maps the worker's own cached partitions, then sums the partial results peer to
  peer (:class:`~scaling.collectives.allreduce.Mesh`, one contiguous buffer); every worker
  applies the same deterministic update to the same bit-identical sums, so all replicas stay
  identical (checked: each returns a digest of its result). The driver only starts the gang
  and receives rank 0's result and every member's per-iteration measurements.

Both styles give the same result up to the order of floating-point additions (a combine tree
against recursive doubling), and both are tested against the same single-machine references.
"""

from __future__ import annotations

import hashlib
import pickle
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from scaling.collectives import run_gang
from scaling.collectives.allreduce import Mesh, MeshBackend, allreduce_bytes
from scaling.errors import EngineError, ScalingError, UsageError, check_choice

if TYPE_CHECKING:
    from scaling.data import Part
    from scaling.engines import Dataset, Engine
    from scaling.engines.worker import GangContext
    from scaling.job import OnIteration

EXECUTIONS = ("driver", "allreduce")
SPLIT = "map and update timed inside each worker, the all-reduce's send, receive and sum"


def add(a, b):
    """Combine step: the sum of two partial results (numbers or arrays)."""
    return a + b


def add_each(a: tuple, b: tuple) -> tuple:
    """Combine step: element-wise sum of two partial results that are tuples (associative and
    commutative, so it may run in any tree)."""
    return tuple(x + y for x, y in zip(a, b, strict=True))


SUMS = (add, add_each)
"""The combines the all-reduce execution can run: sums (of numbers, arrays and tuples of them).
"""


class Loop(ABC):
    """What an iterative job's loop is written against (see the module docstring).

    ``rows``, ``features`` and ``partitions`` describe the whole dataset; ``rank`` is 0 on the
    driver and on the gang's first member.
    """

    rows: int
    features: int
    partitions: int
    rank: int = 0

    @abstractmethod
    def map(self, fn: Callable, *args: Any) -> list:
        """``[fn(part, *args) for every partition]``, in partition order."""

    @abstractmethod
    def map_reduce(self, fn: Callable, combine: Callable, *args: Any) -> Any:
        """Map, then combine every partition's result with ``combine`` (a sum: :data:`SUMS`)."""

    @abstractmethod
    def iteration(self) -> AbstractContextManager:
        """A block that is one iteration (the job's iteration span)."""

    @abstractmethod
    def span(self, name: str) -> AbstractContextManager:
        """A block of other work (``init``, ``final``), traced where the style can."""

    @abstractmethod
    def progress(self, iteration: int, measure: float) -> None:
        """Report an iteration's progress measure (a shift, a gradient norm)."""


class DriverLoop(Loop):
    """The driver loop: each step is an engine call."""

    def __init__(
        self, engine: Engine, ds: Dataset, iteration: str, on_iteration: OnIteration | None
    ) -> None:
        self.engine, self.ds, self.name = engine, ds, iteration
        self.rows, self.features, self.partitions = ds.rows, ds.features, ds.partitions
        self.on_iteration = on_iteration

    def map(self, fn: Callable, *args: Any) -> list:
        return self.engine.map(self.ds, fn, *args)

    def map_reduce(self, fn: Callable, combine: Callable, *args: Any) -> Any:
        return self.engine.map_reduce(self.ds, fn, combine, *args)

    def iteration(self) -> AbstractContextManager:
        return self.engine.trace.span(self.name)

    def span(self, name: str) -> AbstractContextManager:
        return self.engine.trace.span(name)

    def progress(self, iteration: int, measure: float) -> None:
        if self.on_iteration is not None:
            self.on_iteration(iteration, measure)


@dataclass(frozen=True, kw_only=True)
class _Shape:
    rows: int
    features: int
    partitions: int
    timeout: float  # seconds a member waits for a peer


class GangLoop(Loop):
    """One member of the all-reduce execution: its partitions, its mesh, its measurements.

    Per iteration it records its wall time, communication (the all-reduces and all-gathers:
    send, receive and sum), overhead (flattening partial results into one buffer and back) and
    compute (the rest: the map on its partitions and the update), and the bytes the kernel
    counted on its mesh sockets during the iteration.
    """

    def __init__(self, mesh: Mesh, parts: list[Part], shape: _Shape) -> None:
        from scaling.measure.trace import StepLog

        self.mesh, self.parts, self.rank = mesh, parts, mesh.rank
        self.rows, self.features, self.partitions = shape.rows, shape.features, shape.partitions
        self.log = StepLog(mesh.rank)
        self.measures: list[tuple[int, float]] = []
        self._comm = self._overhead = 0.0
        self._bytes: int | None = 0
        self.modelled = 0  # bytes the mesh's algorithms send in iterations (no kernel count)
        self._iterating = False

    def map(self, fn: Callable, *args: Any) -> list:
        mine = [(p.index, fn(p, *args)) for p in self.parts]
        t0 = time.perf_counter()
        everyone = self.mesh.allgather(mine)
        self._comm += time.perf_counter() - t0
        pairs = sorted((pair for rs in everyone for pair in rs), key=itemgetter(0))
        return [r for _, r in pairs]

    def map_reduce(self, fn: Callable, combine: Callable, *args: Any) -> Any:
        if combine not in SUMS:
            raise UsageError(
                f"the all-reduce execution sums partial results, and {combine.__name__} is "
                "not add or add_each (scaling.execution); use --execution driver"
            )
        value = fn(self.parts[0], *args)
        for part in self.parts[1:]:
            value = combine(value, fn(part, *args))
        t0 = time.perf_counter()
        buffer, rebuild = _flatten(value)
        t1 = time.perf_counter()
        self.mesh.allreduce(buffer)
        if self._iterating:
            self.modelled += allreduce_bytes(buffer.nbytes, self.mesh.world)
        t2 = time.perf_counter()
        total = rebuild(buffer)
        self._comm += t2 - t1
        self._overhead += (t1 - t0) + (time.perf_counter() - t2)
        return total

    @contextmanager
    def iteration(self) -> Iterator[None]:
        self._comm = self._overhead = 0.0
        before = self.mesh.bytes_moved()
        t0 = time.perf_counter()
        self._iterating = True
        try:
            yield
        finally:
            self._iterating = False
        wall = time.perf_counter() - t0
        after = self.mesh.bytes_moved()
        if self._bytes is not None and before is not None and after is not None:
            self._bytes += after - before
        else:
            self._bytes = None
        self.log.add(wall, wall - self._comm - self._overhead, self._comm)

    def span(self, name: str) -> AbstractContextManager:
        return nullcontext()  # the gang's own call is traced on the driver

    def progress(self, iteration: int, measure: float) -> None:
        self.measures.append((iteration, measure))

    def measured(self) -> dict:
        """This member's iterations, for :meth:`~scaling.measure.trace.Trace.add_measured`."""
        self.log.sockets = None if self._bytes is None else {f"mesh#{self.rank}": self._bytes}
        return self.log.result()


def _flatten(value: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """A partial result (a number, an array, or a tuple of them) as one contiguous float64
    buffer, and the function that rebuilds a result of the same shape from a buffer."""
    leaves = value if isinstance(value, tuple) else (value,)
    arrays = [np.asarray(v, dtype=np.float64).ravel() for v in leaves]
    buffer = np.concatenate(arrays) if len(arrays) > 1 else arrays[0].copy()
    kinds = [(type(v), np.shape(v)) for v in leaves]

    def rebuild(flat: np.ndarray) -> Any:
        out, at = [], 0
        for kind, shape in kinds:
            size = int(np.prod(shape))
            piece = flat[at : at + size]
            at += size
            if shape:
                out.append(piece.reshape(shape).copy())
            elif issubclass(kind, int | np.integer):
                out.append(round(float(piece[0])))
            else:
                out.append(float(piece[0]))
        return tuple(out) if isinstance(value, tuple) else out[0]

    return buffer, rebuild


def _member(
    ctx: GangContext,
    parts: list[Part],
    backend,
    started,
    loop: Callable,
    shape: _Shape,
    state: Callable | None,
    args: tuple,
) -> dict:
    try:
        with backend.member(ctx, started, shape.timeout) as mesh:
            steps = GangLoop(mesh, parts, shape)
            result = loop(steps, *args)
    except ScalingError as e:  # the user's (bad data): every member finds it alike
        return {"error": e}
    agreed = result if state is None else state(result)
    digest = hashlib.sha256(pickle.dumps(agreed, protocol=5)).hexdigest()
    return {
        "result": result if ctx.rank == 0 else None,
        "digest": digest,
        "log": steps.measured(),
        "measures": steps.measures,
        "modelled": steps.modelled / max(len(steps.log.rows), 1),
    }


def execute(
    engine: Engine,
    ds: Dataset,
    execution: str,
    loop: Callable,
    *args: Any,
    iteration: str,
    on_iteration: OnIteration | None = None,
    state: Callable[[Any], Any] | None = None,
) -> Any:
    """Run ``loop(steps, *args)`` in the ``execution`` style; its result (rank 0's).

    Parameters
    ----------
    engine, ds : Engine, Dataset
        Where the partitions are cached.
    execution : {"driver", "allreduce"}
        The style (see the module docstring).
    loop : callable
        ``loop(steps, *args)``, a module-level function (it travels to the workers), as are
        ``args``.
    iteration : str
        The name of the trace span one ``steps.iteration()`` block is.
    on_iteration : callable, optional
        ``on_iteration(i, measure)`` for each ``steps.progress`` (all-reduce: after the gang).
    state : callable, optional
        A module-level function of the result that gives what every replica must end with
        (default: the whole result; a result with timings in it names its model here).

    Raises
    ------
    UsageError
        When the all-reduce execution has fewer partitions than workers (a worker without rows
        has no partial result to add).
    EngineError
        When the replicas' results differ (a loop that is not deterministic).

    Notes
    -----
    All-reduce: one gang call for the whole loop (its start-up, the mesh's p (p - 1) / 2
    connections, is paid once); per iteration no engine call at all, and each member sends
    :func:`~scaling.collectives.allreduce.allreduce_bytes` of the partial result.
    """
    check_choice("execution", execution, EXECUTIONS)
    if execution == "driver":
        return loop(DriverLoop(engine, ds, iteration, on_iteration), *args)
    if ds.partitions < engine.workers:
        raise UsageError(
            f"the all-reduce execution needs a partition per worker, got {ds.partitions} "
            f"partitions for {engine.workers} workers; load with partitions >= workers"
        )
    shape = _Shape(
        rows=ds.rows, features=ds.features, partitions=ds.partitions, timeout=engine.gang_timeout
    )
    outs = run_gang(engine, ds, MeshBackend(), _member, loop, shape, state, args)
    errors = [o["error"] for o in outs if "error" in o]
    if errors:
        raise errors[0]
    if len({o["digest"] for o in outs}) > 1:
        raise EngineError(
            "the all-reduce replicas ended with different results: the job's update is not "
            "deterministic; run it with --execution driver"
        )
    logs = [o["log"] for o in outs]
    # Where the kernel does not count: every member sends and receives what the algorithm sends.
    modelled = 2 * sum(o["modelled"] for o in outs)
    engine.trace.add_measured(iteration, logs, int(modelled), SPLIT)
    for i, measure in outs[0]["measures"]:
        if on_iteration is not None:
            on_iteration(i, measure)
    return outs[0]["result"]
