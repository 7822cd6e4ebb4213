"""The worker side of the Engine contract, shared by every engine.

Every engine runs these same functions where the data lives, so that every engine computes and
measures exactly the same thing: :func:`load_parts` reads and checks a worker's partitions,
:func:`run_parts` applies a step to them (timing it), :func:`combine_outs` is one node of a
combine tree. Each task also stamps its start and end on the worker's wall clock, for the
per-task timeline (:mod:`scaling.measure.timeline`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.data import Part, Source
from scaling.measure.host import worker_id
from scaling.measure.trace import TaskEvent, payload_bytes

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


@dataclass(frozen=True, kw_only=True)
class PartSpec:
    """What a worker needs to materialise partition ``index``: rows ``[start, stop)``."""

    index: int
    source: Source
    start: int
    stop: int


@dataclass(kw_only=True)
class TaskOut:
    """A task's result with what it cost: compute seconds per worker, bytes sent back, and
    the tasks that made it (start and end on each worker's clock).

    ``empty`` marks a combine result of a worker that holds no partition (more workers than
    partitions): combining skips it.
    """

    value: Any
    compute: dict[str, float]
    nbytes: int
    empty: bool = False
    events: list[TaskEvent] = field(default_factory=list)
    reread: tuple[int, ...] = ()  # partitions a task read again from their specs (Spark)


@dataclass(frozen=True, kw_only=True)
class LoadStat:
    index: int
    rows: int
    nonfinite: int
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class GangContext:
    """What each gang member is told: its rank, the world size and where to meet."""

    rank: int
    world: int
    host: str
    port: int


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
        return None, LoadStat(
            index=spec.index, rows=0, nonfinite=0, error=f"{type(e).__name__}: {e}"
        )
    return Part(X=X, y=y, start=spec.start, index=spec.index), LoadStat(
        index=spec.index, rows=len(X), nonfinite=nonfinite
    )


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
    start, t0 = time.time(), time.perf_counter()
    results = [(i, fn(parts[i], *args)) for i in sorted(parts)]
    if combine is None:
        value: Any = results
    elif not results:
        return TaskOut(value=None, compute={}, nbytes=0, empty=True)
    else:
        value = results[0][1]
        for _, r in results[1:]:
            value = combine(value, r)
    seconds = time.perf_counter() - t0
    me = worker_id()
    event = TaskEvent(
        worker=me, name=getattr(fn, "__name__", "task"), start=start, end=start + seconds
    )
    return TaskOut(value=value, compute={me: seconds}, nbytes=payload_bytes(value), events=[event])


def combine_outs(combine: Callable, a: TaskOut, b: TaskOut) -> TaskOut:
    """One node of a combine tree: merge two partial results where ``a`` lives."""
    if a.empty or b.empty:
        return b if a.empty else a
    start, t0 = time.time(), time.perf_counter()
    value = combine(a.value, b.value)
    compute = dict(a.compute)
    for w, s in b.compute.items():
        compute[w] = compute.get(w, 0.0) + s
    seconds = time.perf_counter() - t0
    me = worker_id()
    compute[me] = compute.get(me, 0.0) + seconds
    event = TaskEvent(
        worker=me, name=getattr(combine, "__name__", "combine"), start=start, end=start + seconds
    )
    events, reread = [*a.events, *b.events, event], a.reread + b.reread
    return TaskOut(
        value=value, compute=compute, nbytes=a.nbytes + b.nbytes, events=events, reread=reread
    )


def tree_reduce(items: list, pair: Callable[[Any, Any], Any]) -> Any:
    """Combine ``items`` pairwise, level by level: log2(len(items)) levels deep."""
    while len(items) > 1:
        items = [
            pair(items[i], items[i + 1]) if i + 1 < len(items) else items[i]
            for i in range(0, len(items), 2)
        ]
    return items[0]


def noop(part: Part) -> None:
    """An empty step: what an engine call costs when it ships and computes nothing."""
    return None


def noop_combine(a: None, b: None) -> None:
    return None


def process_id(part: Part) -> int:
    """The worker process that holds ``part``."""
    return os.getpid()


def clock(part: Part) -> tuple[str, float]:
    """This worker's id and wall clock, for aligning clocks across hosts."""
    return worker_id(), time.time()
