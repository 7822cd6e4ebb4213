"""What the side-by-side benchmarks share: peer clusters set up like this project's, output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from scaling.data import partition_bounds
from scaling.engines.worker import THREAD_ENV
from scaling.measure.host import host_facts
from scaling.results import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"


@contextmanager
def dask_cluster(workers: int) -> Iterator:
    """A Dask LocalCluster of single-thread workers, as this project's Dask engine starts."""
    import dask
    from distributed import Client, LocalCluster

    from scaling.engines.dask import _worker_environ

    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            env=THREAD_ENV,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def scatter_rows(client, array: np.ndarray, workers: int):
    """A persisted dask array of ``array``, one chunk per worker, scattered (not in the graph)."""
    import dask
    import dask.array as da

    shape = array.shape[1:]
    pieces = [
        da.from_delayed(dask.delayed(client.scatter(array[a:b])), (b - a, *shape), array.dtype)
        for a, b in partition_bounds(len(array), workers)
    ]
    return da.concatenate(pieces).persist()


@contextmanager
def spark_local(workers: int) -> Iterator:
    """A SparkSession on ``local[workers]`` with single-thread BLAS, for MLlib."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{workers}]")
        .appName("bench-mllib")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "6g")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.pyspark.python", sys.executable)
    )
    for name, value in THREAD_ENV.items():
        builder = builder.config(f"spark.executorEnv.{name}", value)
    session = builder.getOrCreate()
    try:
        yield session
    finally:
        session.stop()


def interleaved(contenders: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds per call of each contender, calls taking turns after two warm-ups: this
    host's speed swings by a third from minute to minute, and each contender meets the same."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(repeat + 2):
        for name, call in contenders.items():
            t0 = time.perf_counter()
            call()
            if round_ >= 2:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def host_line(h: dict | None = None) -> str:
    """This host in words, or host ``h`` (as :func:`host_facts` gave it there)."""
    python = "" if h else f", Python {platform.python_version()}"
    h = h or host_facts()
    return f"{h['cores']} cores, {h['memory_gib']} GiB, {h['cpu']}{python}"


@dataclass(frozen=True)
class OnModel:
    """A running scale model as a benchmark uses it: its cluster's address, its dilation D as
    measured at start, and where to run programs and read D again."""

    address: str
    dilation: float
    model: object  # the scaling.run.machines.ScaleModel
    probe: str  # the dilation_probe's path, which drivers on the head ask

    def on_head(self, argv: list[str]) -> int:
        """``argv`` run as a driver on the head machine; its exit status."""
        command, env = self.model.driver(argv)
        return subprocess.run(command, env={**env, PROBE: self.probe}).returncode

    def on_workers(self, argvs: list[list[str]], done=lambda: None) -> list[str]:
        """Each of ``argvs`` run on a worker machine, one at a time per machine, all the
        machines busy while any is left (in the order given: longest first balances them);
        their standard outputs, in order. ``done()`` after each; a failure raises."""
        import queue
        import threading

        todo: queue.Queue = queue.Queue()
        for i, argv in enumerate(argvs):
            todo.put((i, ["env", *(f"{k}={v}" for k, v in THREAD_ENV.items()), *argv]))
        out: list[str | BaseException] = [""] * len(argvs)

        def serve(machine) -> None:
            while True:
                try:
                    i, argv = todo.get_nowait()
                except queue.Empty:
                    return
                command = self.model.command(machine, argv)
                ran = subprocess.run(command, capture_output=True, text=True)
                out[i] = ran.stdout if ran.returncode == 0 else RuntimeError(ran.stderr[-2000:])
                done()

        threads = [threading.Thread(target=serve, args=(m,)) for m in self.model.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed := [o for o in out if isinstance(o, BaseException)]:
            raise failed[0]
        return out

    def read_dilation(self) -> float:
        """D read now: one pair of the reference kernel, on a machine and on this host."""
        from scaling.run.machines import measure_dilation

        return measure_dilation(self.model, pairs=1)


@contextmanager
def scale_model(engine: str, machines: int, link: str) -> Iterator[OnModel]:
    """A scale model of ``machines`` running ``engine`` (``scaling cluster start ENGINE
    --machines N --link RATE``), removed whatever happens."""
    from scaling.run import cluster
    from scaling.run.daemons import terminate_as_interrupt
    from scaling.run.machines import ScaleModel

    with terminate_as_interrupt():  # a `kill` of the benchmark removes the model too
        found = cluster.start(engine, 1, machines=machines, link=link)
        try:
            d = found.emulation["dilation"]
            print(f"{engine}: {machines} machines on {link} links, D = {d:.2f}")
            model = ScaleModel.load(found.machines)
            with dilation_probe(model) as probe:
                yield OnModel(found.address, d, model, probe)
        finally:
            cluster.stop(engine)


PROBE = "SCALING_DILATION_PROBE"
"""The environment variable that tells a driver on a scale model's head where to ask for D
now (:func:`dilation_now`)."""


@contextmanager
def dilation_probe(model) -> Iterator[str]:
    """A unix socket (its path, which crosses network namespaces: a head's driver reaches it)
    that answers each connection with D read now: one pair of the reference kernel timed on a
    machine of ``model`` and on this host (:func:`scaling.run.machines.measure_dilation`), from
    here, where both can be started."""
    import socket
    import tempfile
    import threading

    from scaling.run.machines import measure_dilation

    stop = threading.Event()

    def serve(server: socket.socket) -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(1)
                conn.sendall(repr(measure_dilation(model, pairs=1)).encode())

    with tempfile.TemporaryDirectory() as tmp, socket.socket(socket.AF_UNIX) as server:
        path = os.path.join(tmp, "probe")
        server.bind(path)
        server.listen()
        server.settimeout(0.5)  # the stop's latency
        thread = threading.Thread(target=serve, args=(server,), daemon=True)
        thread.start()
        try:
            yield path
        finally:
            stop.set()
            thread.join()


def dilation_now() -> float | None:
    """D read now by the :func:`dilation_probe` of the scale model this driver runs on (about
    3 s of a quiet cluster); None off a scale model."""
    import socket

    if not (path := os.environ.get(PROBE)):
        return None
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(b"?")
        return float(s.makefile().read())


def kept_reading(path: Path) -> str:
    """The hand-written ``## Reading`` of a results file, to keep below its tables when a run
    writes them again ("" where there is none)."""
    text = path.read_text() if path.exists() else ""
    return text[text.index("## Reading") :] if "## Reading" in text else ""


def write_result(
    out: Path, name: str, lines: list[str], record: dict, host: dict | None = None
) -> None:
    """``out/name.md`` (the table) and ``out/name.json`` (the raw record with the host it was
    measured on: this one unless ``host`` says another), atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # one newline at the end: a kept reading brings its own, which would add a blank line
    # every time the table is written again
    atomic_write(out / f"{name}.md", ("\n".join(lines).rstrip("\n") + "\n").encode())
    record = {**record, "host": host or host_facts()}
    atomic_write(
        out / f"{name}.json", (json.dumps(record, indent=1, default=float) + "\n").encode()
    )
