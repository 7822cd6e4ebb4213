"""The pool of clusters that consecutive runs share (:class:`Clusters`): started once per
engine, worker count and address, reused while runs ask for the same."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from scaling.engines import Engine, make_engine


def one_at_a_time(engine: str, workers: int) -> Hashable:
    """Every cluster in one slot: opening another closes the open one."""
    return None


class Clusters:
    """The engines consecutive runs share, kept while runs ask for the same engine, worker
    count, address and options, closed and started afresh when they ask for another.

    Parameters
    ----------
    slot : callable
        ``slot(engine, workers)``: clusters in different slots stay open side by side; one
        in the same slot is closed before another opens. The default keeps one cluster open
        at a time; the notebooks keep one per engine, and Dask's and the local engine's per
        worker count too (:mod:`scaling.present.lab`).

    Notes
    -----
    Starting a cluster costs more than many runs: 7 s for Ray, 10-20 s for Spark's JVM and
    executors on 2 cores. A run's figures come from its iterations after a warm-up one, not
    from start-up; each run gets a fresh trace (keeping the calibrated latencies) and frees
    its data. Ray and Spark hold one cluster per driver process: a slot must not hold two.
    """

    def __init__(self, slot: Callable[[str, int], Hashable] = one_at_a_time) -> None:
        self._slot = slot
        self._open: dict[Hashable, tuple[tuple, Engine]] = {}

    def open(
        self, engine: str, workers: int, address: str | None, options: dict | None = None
    ) -> tuple[Engine, float]:
        """The engine for a run, and the seconds it took to start (0 if it was open)."""
        options = options or {}
        key = (engine, workers, address, tuple(sorted(options.items())))
        slot = self._slot(engine, workers)
        if slot in self._open and self._open[slot][0] == key:
            held = self._open[slot][1]
            held.trace.reset()  # the last run's record is built: its calls can go
            return held, 0.0
        self._close(slot)
        t0 = time.perf_counter()
        self._open[slot] = key, make_engine(engine, workers, address, **options)
        return self._open[slot][1], time.perf_counter() - t0

    def held(self, engine: str, workers: int) -> Engine | None:
        """The open cluster of ``engine`` at ``workers``, if one is open."""
        return next((e for key, e in self._open.values() if key[:2] == (engine, workers)), None)

    def _close(self, slot: Hashable) -> None:
        held = self._open.pop(slot, None)
        if held is not None:
            held[1].close()

    def close(self) -> None:
        """Close every open cluster."""
        for slot in list(self._open):
            self._close(slot)

    def __enter__(self) -> Clusters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
