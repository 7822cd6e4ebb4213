"""Per-call timings and byte counts, and their split into compute / communication / overhead.

Every engine call (load, map, map-reduce, broadcast, gang) appends a :class:`Call`. Its
``compute`` is measured *inside* the tasks: the critical path, i.e. the busiest worker's summed
task time. The rest of the driver's wall time is split by calibration: ``overhead`` is what the
same kind of call costs on this engine when it ships nothing and computes nothing (measured with
no-op calls right after the first load), and ``communication`` is the remainder, the cost of
serialising and moving the payload. A job groups its calls into named spans (one per iteration),
which are what run records report.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np


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


@dataclass
class Call:
    """One engine call as the driver saw it (seconds, bytes)."""

    op: str
    wall: float
    compute: float
    bytes_in: int
    bytes_out: int
    tasks: int
    overhead: float = 0.0
    communication: float = 0.0

    def split(self, latency: float) -> None:
        """Attribute the non-compute time: up to ``latency`` is overhead, the rest moves bytes."""
        rest = max(self.wall - self.compute, 0.0)
        self.overhead = min(latency, rest)
        self.communication = rest - self.overhead


@dataclass
class Span:
    """A named group of calls, typically one iteration; driver-side work counts as compute.

    ``measured`` holds the split of work the driver cannot see call by call (an iteration
    inside a gang, timed by the workers themselves): compute, communication, overhead,
    bytes_in, bytes_out, tasks.
    """

    name: str
    wall: float = 0.0
    calls: list[Call] = field(default_factory=list)
    measured: dict | None = None

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
        }


class Trace:
    """The calls an engine made, their calibrated latencies, and the spans jobs opened."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.spans: list[Span] = []
        self.latency: dict[str, float] = {}
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
        span = Span(name)
        self._open.append(span)
        t0 = time.perf_counter()
        try:
            yield span
        finally:
            span.wall = time.perf_counter() - t0
            self._open.remove(span)
            self.spans.append(span)

    def summaries(self, name: str) -> list[dict]:
        """Summaries of every closed span called ``name``, in order."""
        return [s.summary() for s in self.spans if s.name == name]

    def reset(self) -> None:
        """Forget calls and spans (calibrated latencies stay)."""
        self.calls.clear()
        self.spans.clear()
