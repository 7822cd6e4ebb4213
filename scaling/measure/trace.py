"""Per-call timings and byte counts, and their split into compute / communication / overhead.

Every engine call (load, map, map-reduce, broadcast, gang) appends a :class:`Call`. Its
``compute`` is measured *inside* the tasks: the critical path, i.e. the busiest worker's summed
task time. The rest of the driver's wall time is split by calibration: ``overhead`` is what the
same kind of call costs on this engine when it ships nothing and computes nothing (measured with
no-op calls right after the first load), and ``communication`` is the remainder, the cost of
serialising and moving the payload. A job groups its calls into named spans (one per iteration),
which are what run records report.

Gang jobs (the library's collective runs inside one long engine call) cannot be split call by
call: their members time each iteration themselves and count the bytes their sockets moved,
and :meth:`Trace.add_measured` turns what they measured into the same spans. Every span says
where its numbers come from (``sources``): ``measured``, or ``modelled`` (from the algorithm's
formula) where nothing could be measured.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from scaling.measure.host import worker_id
from scaling.measure.sockets import bytes_between, merge_socket_bytes, socket_bytes


def payload_bytes(obj: object) -> int:
    """Bytes a value takes on the wire: array buffers exactly, anything else pickled.

    Cheaper than pickling arrays just to measure them, and exact for what dominates.
    """
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, list | tuple):
        return sum(payload_bytes(o) for o in obj)
    if isinstance(obj, dict):
        return sum(payload_bytes(k) + payload_bytes(v) for k, v in obj.items())
    try:
        return len(pickle.dumps(obj, protocol=5))
    except Exception:  # unpicklable handles (framework objects) travel as references
        return 0


ENGINE_SOURCES = {
    "split": "measured: compute inside the tasks, overhead by empty calls, the rest moving data",
    "bytes": "measured: the payloads shipped (array buffers, other values pickled)",
}
"""Where the numbers of a span of engine calls come from."""


@dataclass(frozen=True, kw_only=True)
class TaskEvent:
    """A task on a worker (or a part of a gang member's iteration): its name, what kind of
    time it is, and its start and end on that worker's wall clock (``time.time()``)."""

    worker: str
    name: str
    start: float
    end: float
    kind: str = "compute"


@dataclass(kw_only=True)
class Call:
    """One engine call as the driver saw it (seconds, bytes), and the tasks it ran.

    ``start`` is the driver's wall clock when the call began; ``events`` the tasks, each
    stamped on its worker's clock.
    """

    op: str
    wall: float
    compute: float
    bytes_in: int
    bytes_out: int
    tasks: int
    start: float = 0.0
    events: list[TaskEvent] = field(default_factory=list)
    overhead: float = 0.0
    communication: float = 0.0

    def split(self, latency: float) -> None:
        """Attribute the non-compute time: up to ``latency`` is overhead, the rest moves bytes."""
        rest = max(self.wall - self.compute, 0.0)
        self.overhead = min(latency, rest)
        self.communication = rest - self.overhead


def _member_events(log: dict, i: int) -> list[TaskEvent]:
    """Iteration ``i`` of a member as events: its compute, then its communication, then the
    rest (the order within an iteration is drawn, not measured: a member times how long each
    part took, not when)."""
    wall, compute, comm = log["steps"][i]
    start = log["ends"][i] - wall
    parts = (("compute", compute), ("communication", comm), ("overhead", wall - compute - comm))
    events = []
    for kind, seconds in parts:
        if seconds > 0:
            events.append(
                TaskEvent(
                    worker=log["worker"], name=kind, start=start, end=start + seconds, kind=kind
                )
            )
            start += seconds
    return events


class StepLog:
    """What a gang member measures of itself: per iteration its wall, compute and
    communication seconds, and the bytes its collective's TCP sockets moved while the log was
    open.

    Make it before the member joins its collective: sockets open then are the process's own
    (its engine's, the driver's in the local engine), not the collective's, and are left out.
    Open it (:meth:`open`) once the collective is set up and close it (:meth:`close`) when the
    last iteration ends, so that set-up and after-training exchanges are not counted.
    ``unmetered``: iterations that ran before :meth:`open` (counted in time, not bytes).
    """

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.rows: list[tuple[float, float, float]] = []
        self.ends: list[float] = []  # wall clock at the end of each iteration
        self.others = set(socket_bytes() or ())
        self.before: dict | None = None
        self.sockets: dict | None = None
        self.unmetered = 0
        self.uncounted = False  # the collective ran in another process: its bytes are unseen

    def open(self, done: int | None = None) -> None:
        """Start counting bytes; ``done``: iterations already over (default: those added)."""
        self.unmetered = len(self.rows) if done is None else done
        self.before = socket_bytes()

    def close(self) -> None:
        if self.sockets is None:
            moved = bytes_between(self.before, socket_bytes())
            if moved is not None:
                moved = {k: n for k, n in moved.items() if k not in self.others}
            self.sockets = moved

    def add(self, wall: float, compute: float, comm: float, end: float | None = None) -> None:
        """One iteration's seconds; ``end``: its end on the wall clock (default: now)."""
        self.rows.append((wall, compute, comm))
        self.ends.append(time.time() if end is None else end)

    def result(self) -> dict:
        """What the member sends back to the driver, for :meth:`Trace.add_measured`."""

        self.close()
        return {
            "steps": np.array(self.rows, dtype=float).reshape(-1, 3),
            "ends": np.array(self.ends, dtype=float),
            "worker": f"{worker_id()}#{self.rank}",  # threads of one process may be members
            "sockets": None if self.uncounted else self.sockets,
            "unmetered": self.unmetered,
        }


@dataclass(frozen=True, kw_only=True)
class Failure:
    """A worker lost during a call, and what the engine did about it.

    ``detected``: seconds from the call's start until the engine knew (the work of that
    attempt, thrown away); ``recovery``: seconds to replace the workers and re-read their
    partitions from their specs (both None where the framework recovered by itself and did
    not say); ``workers``: the ranks replaced; ``partitions``: those
    re-read; ``how``: in words, by whom (the framework itself, on Spark).
    """

    op: str
    error: str
    how: str
    detected: float | None
    recovery: float | None
    workers: tuple[int, ...] = ()
    partitions: tuple[int, ...] = ()


@dataclass(kw_only=True)
class Span:
    """A named group of calls, typically one iteration; driver-side work counts as compute.

    ``measured`` holds the split of work the driver cannot see call by call (an iteration
    inside a gang, timed by the workers themselves): compute, communication, overhead,
    bytes_in, bytes_out, tasks and sources.
    """

    name: str
    wall: float = 0.0
    calls: list[Call] = field(default_factory=list)
    measured: dict | None = None
    start: float = 0.0  # the driver's wall clock when the span opened
    events: list[TaskEvent] = field(default_factory=list)  # measured inside gang members

    def summary(self) -> dict:
        """wall, compute, communication, overhead (s) and bytes in/out of this span."""
        if self.measured is not None:
            return {"wall": self.wall, **self.measured}
        comm = sum(c.communication for c in self.calls)
        over = sum(c.overhead for c in self.calls)
        return {
            "wall": self.wall,
            "compute": max(self.wall - comm - over, 0.0),
            "communication": comm,
            "overhead": over,
            "bytes_in": sum(c.bytes_in for c in self.calls),
            "bytes_out": sum(c.bytes_out for c in self.calls),
            "tasks": sum(c.tasks for c in self.calls),
            "sources": dict(ENGINE_SOURCES),
        }


class Trace:
    """The calls an engine made, their calibrated latencies, and the spans jobs opened."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.spans: list[Span] = []
        self.latency: dict[str, float] = {}
        self.clock_offsets: dict[str, float] = {}
        """Seconds each worker's clock is ahead of the driver's, for workers on other hosts
        (on the driver's host every process reads the same clock)."""
        self.failures: list[Failure] = []
        """Workers lost during the run, and what the engine did (:class:`Failure`)."""
        self._open: list[Span] = []

    def record(self, call: Call) -> Call:
        call.split(self.latency.get(call.op, 0.0))
        self.calls.append(call)
        for span in self._open:
            span.calls.append(call)
        return call

    @contextmanager
    def span(self, name: str) -> Iterator[Span]:
        """Group the calls made inside the block under ``name``."""
        # both clocks read together, before anything is allocated: a collection of the
        # garbage between them (ms on a large heap) would put the span's bars past its end
        start, t0 = time.time(), time.perf_counter()
        span = Span(name=name, start=start)
        self._open.append(span)
        try:
            yield span
        finally:
            span.wall = time.perf_counter() - t0
            self._open.remove(span)
            self.spans.append(span)

    def summaries(self, name: str) -> list[dict]:
        """Summaries of every closed span called ``name``, in order."""
        return [s.summary() for s in self.spans if s.name == name]

    def typical(self, name: str, warmup: int = 1) -> tuple[int, dict]:
        """The median span ``name`` after the first ``warmup`` (all of them if there are no
        more): its index and summary. One real span, not per-part medians, so that its parts
        add up to its time."""
        summaries = self.summaries(name)
        measured = range(len(summaries))[warmup:] or range(len(summaries))
        index = sorted(measured, key=lambda i: summaries[i]["wall"])[(len(measured) - 1) // 2]
        return index, summaries[index]

    def add_measured(
        self, name: str, logs: list[dict], expected_bytes: int, split: str
    ) -> list[Span]:
        """Spans ``name`` for iterations that gang members measured themselves.

        ``logs`` are the members' :meth:`StepLog.result`. An iteration's span is the slowest
        member's (its critical path); what its wall time has beyond compute and communication
        is overhead. Bytes per iteration are what the members' sockets moved over all the
        iterations (each socket once), divided by them; where the kernel does not count,
        ``expected_bytes`` (the algorithm's volume), marked modelled. ``split`` says how the
        members timed compute and communication.
        """
        steps = min(len(log["steps"]) for log in logs)
        stacked = np.stack([log["steps"][:steps] for log in logs])  # members x steps x 3
        slow = stacked[:, :, 0].argmax(axis=0)  # per step, the member that took longest
        slowest = stacked[slow, np.arange(steps)]
        counted = merge_socket_bytes([log["sockets"] for log in logs])
        if counted is None or not steps:
            nbytes, how = expected_bytes, "modelled: the algorithm's volume per iteration"
        else:
            nbytes = counted // max(steps - logs[0]["unmetered"], 1)
            how = "measured: kernel TCP counters of the members' sockets, per iteration"
        sources = {"split": f"measured: {split}", "bytes": how}
        added = []
        for i, (wall, compute, comm) in enumerate(slowest):
            span = Span(
                name=name,
                wall=float(wall),
                start=float(logs[slow[i]]["ends"][i] - wall),
                events=[e for log in logs for e in _member_events(log, i)],
                measured={
                    "compute": float(compute),
                    "communication": float(comm),
                    "overhead": max(float(wall - compute - comm), 0.0),
                    "bytes_in": int(nbytes // 2),
                    "bytes_out": int(nbytes - nbytes // 2),
                    "tasks": len(logs),
                    "sources": dict(sources),
                },
            )
            self.spans.append(span)
            added.append(span)
        return added

    def reset(self) -> None:
        """Forget calls, spans and failures (calibrated latencies stay)."""
        self.calls.clear()
        self.spans.clear()
        self.failures.clear()
