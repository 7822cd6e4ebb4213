"""What an engine does when a worker dies or freezes: the lineage recovery of map-reduce calls
(a lost worker replaced, its partitions of every cached dataset re-read from their specs, the
call run again, up to ``max_failures``), the error of a call that got no answer in time, and the
failure drill's kill.

:class:`Recovery` is a part of :class:`~scaling.engines.base.Engine`, kept in a file of its
own: it uses the engine's hooks (``_replace_lost``, ``_reload``, ``_map``), its ``trace`` and
the specs of what it holds (``_held``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from scaling.engines.net import answers
from scaling.engines.worker import process_id
from scaling.errors import ClusterLost, DataError, LostWorker, StepTimeout, UsageError
from scaling.measure.trace import Failure

if TYPE_CHECKING:
    from scaling.engines.base import Dataset
    from scaling.measure.trace import Trace


def dead(pids: Mapping[Any, int]) -> list:
    """The keys of ``pids`` (processes on this machine) whose processes are gone; a
    SIGKILLed one may be a zombie until its parent reaps it.

    Notes
    -----
    A gang member fails on its dead peer's broken connection at once, often before the
    framework has noticed the death: an embedded cluster's engine looks at the processes
    themselves to tell a lost worker from the gang's own error.
    """
    import psutil

    out = []
    for key, pid in pids.items():
        try:
            gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            gone = True
        if gone:
            out.append(key)
    return out


class Recovery:
    """Recovery, the drill and a cluster lost, for :class:`~scaling.engines.base.Engine`."""

    name: str
    address: str | None
    max_failures: int
    step_timeout: float
    recovers_itself: bool
    trace: Trace
    _held: dict

    def recovering(self, op: str, attempt: Callable[[], Any]) -> Any:
        """``attempt()``, again after each lost worker is replaced and its partitions are
        re-read (:meth:`recover`), up to ``max_failures`` losses in the run."""
        while True:
            t0 = time.perf_counter()
            try:
                return attempt()
            except LostWorker as e:
                used = sum(f.detected is not None for f in self.trace.failures)  # the engine's
                itself = self.recovers_itself and op != "gang"
                if itself or used >= self.max_failures:
                    raise LostWorker(f"{e} {self._recoveries_spent(used, itself)}") from e
                self.recover(op, e, time.perf_counter() - t0)

    def _recoveries_spent(self, used: int, itself: bool) -> str:
        if not self.max_failures:
            return "(--max-failures 0: no recovery)"
        if itself:
            return f"(after {self.name} ran it {self.max_failures} more times: --max-failures)"
        n = self.max_failures
        return f"(after {used} recover{'y' if used == 1 else 'ies'}: --max-failures {n})"

    def gone(self, patience: float = 0.0) -> bool:
        """Whether the cluster at ``address`` stopped answering (never, in-process), asked
        again for up to ``patience`` seconds: a cluster that is going away fails its calls
        (Dask's scheduler cancels their futures) while its port still takes connections."""
        if self.address is None:
            return False
        deadline = time.monotonic() + patience
        while answers(self.address):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def lost(self, op: str, how: str) -> ClusterLost:
        """The error of a call whose cluster went away (:meth:`gone`) under it."""
        return ClusterLost(
            f"the {self.name} cluster at {self.address} went away during {op} (stopped, killed "
            f"or unreachable: {how}); start it again (`scaling cluster start {self.name}`) and "
            "rerun (results already written are intact)"
        )

    def timed_out(self, op: str) -> StepTimeout:
        """The error of a call that got no answer within ``step_timeout``."""
        return StepTimeout(
            f"no answer from the {self.name} workers within {self.step_timeout:g} s during {op}: "
            "a worker is frozen or unreachable (--step-timeout SECONDS sets this bound)"
        )

    def recover(self, op: str, error: BaseException, detected: float) -> Failure:
        """Replace the workers that died and re-read their partitions of every cached dataset
        from the specs; the :class:`Failure`, also kept in ``trace.failures``."""
        t0 = time.perf_counter()
        lost = self._guard("recover", self._replace_lost)
        reread = []
        for uid, (specs, dtype) in self._held.items():
            for w in lost:
                stats = self._guard("recover", self._reload, uid, w, specs[w], dtype)
                if bad := [s for s in stats if s.error]:
                    raise DataError(f"cannot re-read partition {bad[0].index}: {bad[0].error}")
                reread += [s.index for s in specs[w]]
        cause = error.__cause__ or error
        datasets = len(self._held)
        how = (
            f"replaced worker{'s' * (len(lost) > 1)} {lost}, re-read its {len(reread)} "
            f"partitions of {datasets} cached dataset{'s' * (datasets != 1)} from their specs, "
            "ran the call again"
            if lost
            else f"{self.name} started a new worker itself; ran the call again, its tasks "
            "re-reading what they miss from their specs"
        )
        failure = Failure(
            op=op,
            error=f"{type(cause).__name__}: {self._error_summary(cause)}"[:160],
            how=how,
            detected=detected,
            recovery=time.perf_counter() - t0,
            workers=tuple(lost),
            partitions=tuple(sorted(set(reread))),
        )
        self.trace.failures.append(failure)
        return failure

    def kill_worker(self, ds: Dataset, pid: int | None = None) -> int:
        """Kill (SIGKILL) the worker process that holds partition 0 of ``ds`` (its
        :meth:`worker_pid`, or ``pid``), as the out-of-memory killer would: the failure drill
        (``--kill-worker-at``). Its pid."""
        pid = self.worker_pid(ds) if pid is None else pid
        os.kill(pid, signal.SIGKILL)
        return pid

    def worker_pid(self, ds: Dataset, gang: bool = False) -> int:
        """The process id of the worker that holds partition 0 of ``ds`` (embedded clusters
        only: it is a process on this machine); ``gang``: the one its gang member will run
        in."""
        if self.address is not None:
            raise UsageError(
                "--kill-worker-at kills a worker process of an embedded cluster, on this "
                "machine: leave out --address"
            )
        outs = self._guard("map", self._map, ds, process_id, ())
        return dict(pair for out in outs for pair in out.value)[0]
