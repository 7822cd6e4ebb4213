"""Spark engine: a cached RDD of partition specs, the rows cached in the Python workers.

Native mapping: map is ``mapPartitions``; map-reduce is ``treeReduce`` (partial results
combined on the executors level by level; Spark does the last, small level on the driver);
broadcast is ``sc.broadcast``; a gang is a barrier stage.

Where the rows live: an RDD of NumPy partitions cached the usual way is kept *pickled in the
JVM*, so every iteration would stream the whole dataset JVM -> Python again. Instead the RDD
holds only the small :class:`PartSpec` s and is cached, which makes the scheduler send partition
``i`` back to the executor that holds it (``PROCESS_LOCAL``); each executor has one core and so
one reused Python worker, which keeps the materialised rows in :data:`_CACHE`. A miss (a new
Python worker, or a task moved elsewhere) re-reads the partition from its source: the same
recovery as Spark's lineage recompute.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from pyspark import BarrierTaskContext
from pyspark.broadcast import Broadcast as SparkBroadcast
from pyspark.sql import SparkSession

from scaling.data import Part
from scaling.engines.base import Cached, Dataset, Engine
from scaling.engines.defaults import WATCH
from scaling.engines.worker import (
    THREAD_ENV,
    GangContext,
    LoadStat,
    PartSpec,
    TaskOut,
    combine_outs,
    load_part,
    pin_threads,
    run_parts,
)
from scaling.errors import EngineError, GangTimeout, UsageError

_CACHE: dict[tuple[str, int], Part] = {}
"""Partitions materialised in this Python worker, by (dataset uid, partition index)."""

EXECUTOR_MEMORY_MB = 1024
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
JVM_LOG = Path(tempfile.gettempdir()) / "scaling-spark-jvm.log"
"""Where the Spark JVMs (driver, and the executors it starts) write their standard error."""
STOP_WAIT = 10.0
"""Seconds :meth:`SparkEngine.close` waits for the SparkContext to stop: with an executor
unreachable (a partitioned machine) its stop waits out ``spark.rpc.askTimeout``, 120 s."""


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Point file descriptor 2 at ``path`` (appending) for the block, for child processes
    started in it; Python's own ``sys.stderr`` is flushed first and restored after."""
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


def _part(uid: str, spec: PartSpec, dtype: str) -> tuple[Part, bool]:
    """The cached partition, or (a new Python worker, or a task moved) read again from its
    spec: then also True."""
    key = (uid, spec.index)
    reread = key not in _CACHE
    if reread:
        part, stat = load_part(spec, dtype)
        if part is None:
            raise RuntimeError(stat.error)
        _CACHE[key] = part
    return _CACHE[key], reread


def _resolve(args: tuple) -> tuple:
    return tuple(a.value if isinstance(a, SparkBroadcast) else a for a in args)


def _load(uid: str, dtype: str, specs: Iterator[PartSpec]) -> list[LoadStat]:
    pin_threads()
    stats = []
    for spec in specs:
        part, stat = load_part(spec, dtype)
        if part is not None:
            _CACHE[(uid, spec.index)] = part
        stats.append(stat)
    return stats


def _run(
    uid: str,
    dtype: str,
    fn: Callable,
    args: tuple,
    combine: Callable | None,
    specs: Iterator[PartSpec],
) -> list[TaskOut]:
    args = _resolve(args)
    outs = []
    for s in specs:
        part, reread = _part(uid, s, dtype)
        out = run_parts({s.index: part}, fn, args, combine)
        outs.append(dataclasses.replace(out, reread=(s.index,)) if reread else out)
    return outs


def _gang(
    uid: str,
    dtype: str,
    fn: Callable,
    ctxs: list[GangContext],
    args: tuple,
    groups: Iterator[list[PartSpec]],
) -> list:
    pin_threads()
    rank = BarrierTaskContext.get().partitionId()
    parts = [_part(uid, s, dtype)[0] for group in groups for s in group]
    return [(rank, fn(ctxs[rank], parts, *_resolve(args)))]


def _release(uid: str, specs: Iterator[PartSpec]) -> list[int]:
    return [int(_CACHE.pop((uid, s.index), None) is not None) for s in specs]


class _ActionThread:
    """One daemon thread that runs the driver's Spark actions, one at a time, so that a step
    can be given a deadline. One thread for all: py4j gives each new Python thread a JVM
    thread of its own, and a thread per step cost 2-3 ms more (116 against 118 ms for an
    empty treeReduce, medians of 40 taking turns)."""

    def __init__(self) -> None:
        self._actions: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, daemon=True, name="spark-actions").start()

    def _serve(self) -> None:
        while True:
            action, box, done = self._actions.get()
            try:
                box["result"] = action()
            except BaseException as e:
                box["error"] = e
            done.set()

    def run(
        self, action: Callable[[], Any], timeout: float, gone: Callable[[], bool]
    ) -> tuple[bool, dict]:
        """Whether ``action`` finished within ``timeout`` seconds, and its result or error
        (or ``{"gone": True}`` once ``gone()``, asked every :data:`WATCH` s, says so)."""
        box: dict[str, Any] = {}
        done = threading.Event()
        self._actions.put((action, box, done))
        deadline = time.monotonic() + timeout
        while not done.wait(min(WATCH, max(deadline - time.monotonic(), 0))):
            if time.monotonic() >= deadline:
                return False, box
            if gone():
                return False, {"gone": True}
        return True, box


class SparkEngine(Engine):
    """Spark engine: ``address=None`` starts ``local-cluster[workers, 1 core, 1 GiB]``."""

    name = "spark"
    framework = "pyspark"
    address_schemes = ("spark",)
    recovers_itself = True  # a failed task runs again (spark.task.maxFailures), re-reading

    def worker_pid(self, ds: Dataset, gang: bool = False) -> int:
        if gang:
            raise UsageError(
                "--kill-worker-at in a gang: Spark runs a barrier stage's tasks in Python "
                "workers of their own, which the drill cannot name beforehand; use the ray or "
                "dask engine, or --execution driver"
            )
        return super().worker_pid(ds)

    def _start(self) -> None:
        from pyspark import SparkContext

        if SparkContext._active_spark_context is not None:
            raise EngineError(
                "a SparkContext is already running in this process; close the "
                "other spark engine first (one SparkContext per process)"
            )
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        master = self.address or f"local-cluster[{self.workers},1,{EXECUTOR_MEMORY_MB}]"
        builder = (
            SparkSession.builder.master(master)
            .appName("scaling")
            .config("spark.driver.host", os.environ["SPARK_LOCAL_IP"])
            .config("spark.driver.bindAddress", os.environ["SPARK_LOCAL_IP"])
            # the application's web UI where the run is on a cluster that lives on (watched
            # from the master's UI); an embedded cluster's ends with the run
            .config("spark.ui.enabled", str(self.address is not None).lower())
            .config("spark.ui.port", "0")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG_CONFIG}")
            .config("spark.executor.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG_CONFIG}")
            .config("spark.executor.cores", "1")
            .config("spark.cores.max", str(self.workers))
            .config("spark.executor.memory", f"{EXECUTOR_MEMORY_MB}m")
            .config("spark.python.worker.reuse", "true")
            .config("spark.task.maxFailures", str(self.max_failures + 1))
            .config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
        )
        for name, value in THREAD_ENV.items():
            builder = builder.config(f"spark.executorEnv.{name}", value)
        # The JVM inherits the driver's standard error when it starts, and prints its start-up
        # lines there ("Using incubator modules", "Setting default log level"): give it a log
        # file instead, so that the program's own output is what the terminal shows.
        with _stderr_to(JVM_LOG):
            self._session = builder.getOrCreate()
        self._sc = self._session.sparkContext
        self._actions: _ActionThread | None = None
        if self._sc.uiWebUrl:
            self.dashboards = {"Spark application": self._sc.uiWebUrl}
        if self.address is not None:
            self._wait_for_executors()

    def _wait_for_executors(self, settle: float = 5.0, timeout: float = 60.0) -> None:
        """Wait until the master has given this application its executors. A master with
        fewer free cores than asked gives fewer, and Spark would run the job on those alone
        (recorded at the wrong worker count): fail once their number has stood still for
        ``settle`` seconds, saying how many it gave."""
        status = self._sc._jsc.sc().getExecutorMemoryStatus  # the driver's entry too
        deadline, seen, since = time.monotonic() + timeout, -1, time.monotonic()
        while (have := status().size() - 1) < self.workers:
            now = time.monotonic()
            if have != seen:
                seen, since = have, now
            elif self.gone():
                raise self.lost("start", "its master stopped answering")
            elif (have and now - since > settle) or now > deadline:
                self._session.stop()
                raise EngineError(
                    f"the Spark master at {self.address} gave {have} one-core executors, "
                    f"{self.workers} asked; start more workers or ask for fewer"
                )
            time.sleep(0.2)

    def _within(self, action: Callable[[], Any], timeout: float, op: str) -> Any:
        """``action()`` (a Spark job) in the engine's action thread, its jobs cancelled if it
        takes longer than ``timeout`` seconds (then TimeoutError) or the cluster goes away
        (then :meth:`lost`): a Spark job waits for a frozen worker, and for the executors of a
        cluster that is gone."""
        if self._actions is None:
            self._actions = _ActionThread()
        done, box = self._actions.run(action, timeout, self.gone)
        if not done:
            self._sc.cancelAllJobs()
            self._actions = None  # it is still in the cancelled job: the next call gets a new one
            if "gone" in box:
                raise self.lost(op, "its master stopped answering")
            raise TimeoutError
        if "error" in box:
            raise box["error"]
        return box["result"]

    def _step(self, action: Callable[[], Any], op: str) -> Any:
        try:
            return self._within(action, self.step_timeout, op)
        except TimeoutError:
            raise self.timed_out(op) from None

    def _load(self, uid: str, specs: list[list[PartSpec]], dtype: str) -> Cached:
        flat = sorted((s for worker in specs for s in worker), key=lambda s: s.index)
        rdd = self._sc.parallelize(flat, numSlices=len(flat)).cache()
        stats = self._step(rdd.mapPartitions(partial(_load, uid, dtype)).collect, "load")
        return (rdd, specs), stats

    def _map(self, ds: Dataset, fn: Callable, args: tuple) -> list[TaskOut]:
        outs = ds.native[0].mapPartitions(partial(_run, ds.uid, ds.dtype, fn, args, None))
        return self._step(outs.collect, "map")

    def _map_reduce(self, ds: Dataset, fn: Callable, combine: Callable, args: tuple) -> TaskOut:
        outs = ds.native[0].mapPartitions(partial(_run, ds.uid, ds.dtype, fn, args, combine))
        return self._step(
            lambda: outs.treeReduce(partial(combine_outs, combine), depth=2), op="map_reduce"
        )

    def _broadcast(self, value: Any) -> Any:
        return self._sc.broadcast(value)

    def _gang(
        self, ds: Dataset, fn: Callable, ctxs: list[GangContext], args: tuple, timeout: float
    ) -> list:
        # A barrier stage needs one task per slot, and allows no coalesce(): parallelize the
        # per-worker groups of specs; each task finds its rows in its Python worker's cache.
        groups = self._sc.parallelize(ds.native[1], numSlices=self.workers)
        job = groups.barrier().mapPartitions(partial(_gang, ds.uid, ds.dtype, fn, ctxs, args))
        try:
            results = self._within(job.collect, timeout, "gang")
        except TimeoutError:
            raise GangTimeout from None
        return [r for _, r in sorted(results, key=lambda p: p[0])]

    def _release(self, ds: Dataset) -> None:
        rdd = ds.native[0]
        self._step(rdd.mapPartitions(partial(_release, ds.uid)).collect, "release")
        rdd.unpersist()

    def _replace_lost(self) -> list[int]:
        return []  # Spark starts a new Python worker; its tasks re-read their partitions

    def _is_worker_lost(self, error: BaseException) -> bool:
        text = str(error)
        return any(
            s in text
            for s in (
                "Python worker exited unexpectedly",
                "crashed",
                "ExecutorLostFailure",
                "worker lost",
            )
        )

    def _error_summary(self, error: BaseException) -> str:
        # Py4J errors open with "An error occurred while calling o42.collect"; the useful
        # line is the Python exception (or Spark's own) buried in the Java trace.
        found = re.findall(r"^[\s:]*([A-Za-z_.]*(?:Error|Exception): .+)$", str(error), re.M)
        python = [f for f in found if not f.startswith(("org.", "java.", "py4j."))]
        return (python or found or [super()._error_summary(error)])[-1][:300]

    def _stop(self) -> None:
        # Past STOP_WAIT the stop goes on in its thread: the driver's JVM ends with this
        # process (its gateway exits when our end of its stdin closes).
        stopping = threading.Thread(target=self._session.stop, daemon=True)
        stopping.start()
        stopping.join(STOP_WAIT)
