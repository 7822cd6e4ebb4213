"""In-process, serial engine: the reference result and the T(1) baseline.

Its ``workers`` partitions are processed one after another in the driver process, limited to
one BLAS thread, so its time is what a single core does; a gang runs as threads, so that
code written for collectives runs here too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from threadpoolctl import ThreadpoolController

from scaling.engines.base import Cached, Dataset, Engine
from scaling.engines.worker import (
    GangContext,
    LoadStat,
    PartSpec,
    TaskOut,
    combine_outs,
    load_parts,
    run_parts,
)
from scaling.errors import EngineError, GangTimeout, UsageError


class LocalEngine(Engine):
    """Serial, in-process engine (no framework)."""

    name = "local"

    def _start(self) -> None:
        if self.address is not None:
            raise EngineError("the local engine runs in-process and takes no --address")
        self._data: dict[str, list[dict]] = {}
        # Found once: threadpool_limits() would look the BLAS libraries up again on every call.
        self._threads = ThreadpoolController()

    def worker_pid(self, ds: Dataset, gang: bool = False) -> int:
        raise UsageError(
            "--kill-worker-at kills a worker process; the local engine's workers run in this "
            "one: use the ray, dask or spark engine"
        )

    def _load(self, uid: str, specs: list[list[PartSpec]], dtype: str) -> Cached:
        stats: list[LoadStat] = []
        with self._threads.limit(limits=1):
            loaded = [load_parts(s, dtype) for s in specs]
        self._data[uid] = [parts for parts, _ in loaded]
        for _, s in loaded:
            stats.extend(s)
        return uid, stats

    def _map(self, ds: Dataset, fn: Callable, args: tuple) -> list[TaskOut]:
        with self._threads.limit(limits=1):
            return [run_parts(parts, fn, args, None) for parts in self._data[ds.uid]]

    def _map_reduce(self, ds: Dataset, fn: Callable, combine: Callable, args: tuple) -> TaskOut:
        with self._threads.limit(limits=1):
            outs = [run_parts(parts, fn, args, combine) for parts in self._data[ds.uid]]
            total = outs[0]
            for out in outs[1:]:
                total = combine_outs(combine, total, out)
            return total

    def _broadcast(self, value: Any) -> Any:
        return value

    def _gang(
        self, ds: Dataset, fn: Callable, ctxs: list[GangContext], args: tuple, timeout: float
    ) -> list:
        results: list[Any] = [None] * len(ctxs)
        errors: list[BaseException] = []

        def member(rank: int) -> None:
            try:
                parts = self._data[ds.uid][rank]
                results[rank] = fn(ctxs[rank], [parts[i] for i in sorted(parts)], *args)
            except BaseException as e:
                errors.append(e)

        threads = [
            threading.Thread(target=member, args=(r,), daemon=True) for r in range(len(ctxs))
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0))
        if any(t.is_alive() for t in threads):
            raise GangTimeout
        if errors:
            raise errors[0]
        return results

    def _release(self, ds: Dataset) -> None:
        self._data.pop(ds.uid, None)

    def _stop(self) -> None:
        self._data.clear()
