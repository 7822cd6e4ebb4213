"""Dask engine: partitions are futures pinned to workers.

Native mapping: each worker's partitions are one future computed on, and restricted to, that
worker (``workers=[addr], allow_other_workers=False``), so they stay in its memory; map submits
one task per worker next to its data; the combine tree is tasks that take the children's
futures, so partial results move worker to worker; broadcast is
``client.scatter(broadcast=True)``; a gang is one task pinned to each single-thread worker.

Dask re-runs the tasks of a worker that died on a *restarted* worker, which has a new address:
tasks pinned to the old one would wait forever. :meth:`DaskEngine._wait` therefore watches the
worker set and fails the call as soon as one of ours disappears; to recover,
:meth:`DaskEngine._replace_lost` gives that rank the restarted worker's new address, where
its partitions are read again from their specs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import dask
import distributed
from distributed import Client, Future, KilledWorker, LocalCluster

from scaling.engines.base import Cached, Dataset, Engine
from scaling.engines.recovery import dead
from scaling.engines.worker import (
    THREAD_ENV,
    GangContext,
    LoadStat,
    PartSpec,
    TaskOut,
    combine_outs,
    load_parts,
    run_parts,
    tree_reduce,
)
from scaling.errors import EngineError, GangTimeout

REPLACE_SECONDS = 60.0
"""How long a lost worker's replacement (a nanny restarts its worker) may take to join."""

LOSS_SECONDS = 2.0
"""How long a failed task's call waits to see whether a worker died (the failure's cause)."""

GANG_LOSS_SECONDS = 10.0
"""The same for a gang, whose members fail on a dead peer's connection before the scheduler
has removed it (more than 2 s once, on a loaded 2-core machine)."""

EXIT_SECONDS = 1.0
"""How long a failed call waits for a dying worker's process to end where the engine knows
its processes (an embedded cluster): a peer's connection is reset as the process starts to
exit, and a member failed on it before psutil saw the process gone (a flaky test, twice)."""

JOINING_SECONDS = 5.0
"""How long a cluster at an address with fewer workers than asked gets for more to join."""

QUIET = {
    "distributed.worker.profile.enabled": False,
    "distributed.scheduler.work-stealing": False,
}
"""Nothing beside the job on a worker's core while it computes. Dask's statistical profiler
samples every thread's stack each 10 ms, and work stealing looks for tasks to move each 100
ms, though every task here is pinned to its worker: during a 2-worker all-reduce k-means a
worker's event loop took 3-4% of a core with them, 1.7% without. (The dashboard's profile
page is empty.)"""


TIMERS = {
    "distributed.admin.tick.interval": 0.02,
    "distributed.admin.tick.cycle": 1.0,
    "distributed.admin.system-monitor.interval": 0.5,
    "distributed.worker.memory.monitor-interval": 0.1,
}
"""The daemons' own periodic work (seconds between rounds): the event loop's tick, the system
and memory monitors (psutil's reads). Idle, a nanny, its worker and a scheduler each took
2.1-2.5% of a core on this host with them; on a scale model's machine, whose CPU is 1 / D of
a core and whose clock is not slowed, that is D times the share of its CPU (22% of a machine
at D = 5 for a nanny and its worker), taken from the job. Slowed by D with the rest
(DieCast's time dilation slows the guests' clocks, and their timers with them), a nanny and
its worker took 1.4% together at D = 5."""


def quiet_environ(dilation: float = 1.0) -> dict[str, str]:
    """:data:`QUIET` as the environment variables that ``dask worker`` and ``dask
    scheduler`` read it from (``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED``, ...); on a
    scale model's machine slowed by ``dilation``, :data:`TIMERS` slowed by it too."""
    slowed = {k: f"{round(s * dilation * 1000)}ms" for k, s in TIMERS.items() if dilation > 1}
    return {
        "DASK_" + key.upper().replace(".", "__").replace("-", "_"): str(value)
        for key, value in (QUIET | slowed).items()
    }


class WorkerLost(RuntimeError):
    """One of the engine's Dask workers left the cluster during a call."""


def _load(specs: list[PartSpec], dtype: str) -> dict:
    parts, stats = load_parts(specs, dtype)
    return {"parts": parts, "stats": stats}


def _stats(held: dict) -> list[LoadStat]:
    return held["stats"]


def _run(held: dict, fn: Callable, args: tuple, combine: Callable | None) -> TaskOut:
    return run_parts(held["parts"], fn, args, combine)


def _gang(held: dict, fn: Callable, ctx: GangContext, args: tuple) -> Any:
    parts = held["parts"]
    return fn(ctx, [parts[i] for i in sorted(parts)], *args)


def _worker_environ() -> dict:
    """Dask's worker environment without ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets it (to 64 KiB) to hand freed memory back to the OS sooner. Setting it also turns
    off glibc's adaptive mmap threshold, so every NumPy temporary over 64 KiB is freed to the
    OS and faulted in again: the k-means kernel on 1M x 32 rows took 0.21 s instead of 0.12 s
    per pass with it. Workers here hold a cached dataset and reuse the same temporaries each
    iteration, which is the case glibc's defaults are good at.
    """
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


class DaskEngine(Engine):
    """Dask engine: ``address=None`` starts a LocalCluster of single-thread worker processes."""

    name = "dask"
    framework = "distributed"
    address_schemes = ("tcp",)

    def _start(self) -> None:
        dask.config.set(
            {
                # A task that kills its worker should fail the call at once, not be retried.
                "distributed.scheduler.allowed-failures": 0,
                # LocalCluster closes the nanny of a worker still gone this long after *a*
                # removal, timed from the first: a worker that died, was restarted and died
                # again within it lost its nanny mid-restart, and with it the replacement.
                # The nanny restarts its worker; it is not a lost batch job to give up on.
                "distributed.deploy.lost-worker-timeout": "1 day",
                **QUIET,
            }
        )
        self._cluster = None
        self._held_futures: dict[str, list[Future]] = {}
        if self.address is None:
            with dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}):
                self._cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,  # none: it would listen on every interface
                    # its HTTP server (health, metrics) on a free port, not 8787: a second
                    # cluster here (another run's, `scaling cluster`'s) warned it was taken
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    env=THREAD_ENV,
                    # the workers' own errors reach the driver as failed futures; at ERROR a
                    # heartbeat that races the scheduler's close printed a 30-line traceback
                    silence_logs=logging.CRITICAL,
                )
            self._client = Client(self._cluster)
        else:
            # a scheduler that goes away is said in one line (ClusterLost), not as the
            # client's tracebacks of each reconnect it tries and of its closed connection
            for name in ("distributed.client", "distributed.batched"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
            self._client = Client(self.address, timeout=10)
            if len(self._workers()) < self.workers:
                # workers still joining get a moment; a cluster of fewer fails below
                with contextlib.suppress(TimeoutError):
                    self._client.wait_for_workers(self.workers, timeout=JOINING_SECONDS)
        info = self._workers()
        self._addrs = sorted(info)[: self.workers]
        self._pids: dict[str, int] = {}  # an embedded cluster's workers: processes here
        self._note_pids()
        self._memory_limit = min((info[a].get("memory_limit") or 0 for a in self._addrs), default=0)
        if len(self._addrs) < self.workers:
            raise EngineError(
                f"the Dask cluster has {len(info)} workers, {self.workers} asked; "
                "start more workers or ask for fewer"
            )

    def _workers(self) -> dict[str, dict]:
        """The cluster's workers as the scheduler says now, by address. Not through
        ``Client.scheduler_info``, which returns a cache that the client's periodic refresh
        (asking for no workers) can overwrite between its fetch and our read: seen as our
        workers all gone while a busy scheduler answered both at once."""
        return self._client.sync(self._client.scheduler.identity, n_workers=-1)["workers"]

    @property
    def worker_memory(self) -> int:
        return self._memory_limit or super().worker_memory

    def _submit(self, w: int, fn: Callable, *args: Any) -> Future:
        return self._client.submit(
            fn, *args, workers=[self._addrs[w]], allow_other_workers=False, pure=False
        )

    def _wait(
        self, futures: list[Future], timeout: float | None = None, settle: float = LOSS_SECONDS
    ) -> list:
        """Gather, failing fast if one of our workers leaves the cluster meanwhile (a task's
        failure is a lost worker's if one leaves within ``settle`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = _all_done(futures, 0.5)
            # The first failure fails the call: gang members would wait for a failed peer.
            failed = [f for f in futures if f.status == "error"]
            if failed:
                self._client.cancel([f for f in futures if f.status != "error"])
                # A member whose peer died fails on its broken connection at once, often
                # before the scheduler has removed the dead worker: the death is the cause
                # (seen within EXIT_SECONDS in an embedded cluster's processes, else within
                # ``settle`` in the scheduler's).
                killed = [f for f in failed if isinstance(f.exception(), KilledWorker)]
                wait = min(settle, EXIT_SECONDS) if self._pids else settle
                if not killed and (lost := self._lost_within(wait)):
                    raise WorkerLost(f"worker {lost[0]} left the cluster")
                self._client.gather(killed or failed)  # raises the worker's or member's error
            if done:
                return self._client.gather(futures)
            if lost := self._lost_within(0):
                self._client.cancel(futures)
                raise WorkerLost(f"worker {lost[0]} left the cluster")
            if deadline is not None and time.monotonic() > deadline:
                self._client.cancel(futures)
                raise TimeoutError

    def _lost_within(self, seconds: float) -> list[str]:
        """Our workers that have left the cluster (or whose processes here have ended),
        looking again for up to ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            alive = set(self._workers())
            lost = dead(self._pids) or [a for a in self._addrs if a not in alive]
            if lost or time.monotonic() >= deadline:
                return lost
            time.sleep(0.1)

    def _step(self, futures: list[Future], op: str) -> list:
        """Gather within the step deadline."""
        try:
            return self._wait(futures, self.step_timeout)
        except TimeoutError:
            raise self.timed_out(op) from None

    def _load(self, uid: str, specs: list[list[PartSpec]], dtype: str) -> Cached:
        held = [self._submit(w, _load, s, dtype) for w, s in enumerate(specs)]
        self._held_futures[uid] = held
        stats = self._step([self._submit(w, _stats, h) for w, h in enumerate(held)], "load")
        return held, [s for worker in stats for s in worker]

    def _map(self, ds: Dataset, fn: Callable, args: tuple) -> list[TaskOut]:
        outs = [self._submit(w, _run, h, fn, args, None) for w, h in enumerate(ds.native)]
        return self._step(outs, "map")

    def _map_reduce(self, ds: Dataset, fn: Callable, combine: Callable, args: tuple) -> TaskOut:
        outs = [self._submit(w, _run, h, fn, args, combine) for w, h in enumerate(ds.native)]
        where = {o.key: w for w, o in enumerate(outs)}

        def pair(a: Future, b: Future) -> Future:
            f = self._submit(where[a.key], combine_outs, combine, a, b)  # b moves to a
            where[f.key] = where[a.key]
            return f

        return self._step([tree_reduce(outs, pair)], "map_reduce")[0]

    def _broadcast(self, value: Any) -> Any:
        return self._client.scatter(value, broadcast=True, hash=False)

    def _gang(
        self, ds: Dataset, fn: Callable, ctxs: list[GangContext], args: tuple, timeout: float
    ) -> list:
        futures = [self._submit(c.rank, _gang, ds.native[c.rank], fn, c, args) for c in ctxs]
        try:  # a member fails on its dead peer at once; the scheduler may take a while
            return self._wait(futures, timeout, settle=GANG_LOSS_SECONDS)
        except TimeoutError:
            raise GangTimeout from None

    def _release(self, ds: Dataset) -> None:
        # Let go of the futures rather than cancel them: the scheduler's cancel walks their
        # dependents too, and one that this client has let go of but a busy scheduler still
        # holds (a finished step's task) fails its ``assert ts.who_wants``, which closes our
        # connection: every future cancelled ("scheduler-connection-lost", distributed
        # 2026.8, seen on a scale model's head).
        self._held_futures.pop(ds.uid, None)
        for future in ds.native:
            future.release()

    def _replace_lost(self) -> list[int]:
        """The workers the nannies started in place of the dead ones (at new addresses)."""
        deadline = time.monotonic() + REPLACE_SECONDS
        while True:
            alive = set(self._workers())
            lost = [w for w, a in enumerate(self._addrs) if a not in alive]
            fresh = sorted(alive - set(self._addrs))
            if len(fresh) >= len(lost):
                break
            if time.monotonic() > deadline:
                raise EngineError(
                    f"{len(lost)} Dask worker(s) died and {len(fresh)} joined in their place "
                    f"within {REPLACE_SECONDS:g} s (a cluster without nannies does not restart "
                    "them); start more workers, or run again"
                )
            time.sleep(0.2)
        for w, address in zip(lost, fresh, strict=False):
            self._addrs[w] = address
        self._note_pids()
        return lost

    def _note_pids(self) -> None:
        if self._cluster is not None:
            self._pids = self._client.run(os.getpid, workers=self._addrs)

    def _reload(self, uid: str, w: int, specs: list[PartSpec], dtype: str) -> list[LoadStat]:
        held = self._held_futures[uid]  # the dataset's own list: its native handle
        held[w] = self._submit(w, _load, specs, dtype)
        return self._step([self._submit(w, _stats, held[w])], "recover")[0]

    def _is_worker_lost(self, error: BaseException) -> bool:
        return isinstance(error, WorkerLost | KilledWorker)

    def _error_summary(self, error: BaseException) -> str:
        # Futures cancelled say why on their later lines ("scheduler-connection-lost", ...).
        groups = getattr(error, "error_groups", None)
        if not groups:
            return super()._error_summary(error)
        reasons = ", ".join(sorted({g.reason for g in groups}))
        return f"{super()._error_summary(error)} {reasons}"

    def _stop(self) -> None:
        self._client.close(timeout=30)
        if self._cluster is not None:
            self._cluster.close(timeout=30)


def _all_done(futures: list[Future], timeout: float) -> bool:
    """Whether every future finished (or failed) within ``timeout`` seconds."""
    try:
        distributed.wait(futures, timeout=timeout)
    except TimeoutError:
        return False
    return True
