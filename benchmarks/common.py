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


def host_line() -> str:
    h = host_facts()
    python = platform.python_version()
    return f"{h['cores']} cores, {h['memory_gib']} GiB, {h['cpu']}, Python {python}"


@contextmanager
def scale_model(engine: str, machines: int, link: str) -> Iterator:
    """A scale model of ``machines`` running ``engine`` (``scaling cluster start ENGINE
    --machines N --link RATE``), removed whatever happens: its cluster's address, its measured
    dilation D, and ``on_head(argv)``, which runs ``argv`` as a driver on its head machine and
    returns its exit status."""
    from scaling.run import cluster
    from scaling.run.machines import ScaleModel

    found = cluster.start(engine, 1, machines=machines, link=link)
    try:
        d = found.emulation["dilation"]
        print(f"{engine}: {machines} machines on {link} links, D = {d:.2f}")
        model = ScaleModel.load(found.machines)

        def on_head(argv: list[str]) -> int:
            command, env = model.driver(argv)
            return subprocess.run(command, env=env).returncode

        yield found.address, d, on_head
    finally:
        cluster.stop(engine)


def kept_reading(path: Path) -> str:
    """The hand-written ``## Reading`` of a results file, to keep below its tables when a run
    writes them again ("" where there is none)."""
    text = path.read_text() if path.exists() else ""
    return text[text.index("## Reading") :] if "## Reading" in text else ""


def write_result(out: Path, name: str, lines: list[str], record: dict) -> None:
    """``out/name.md`` (the table) and ``out/name.json`` (the raw record with the host),
    atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / f"{name}.md", ("\n".join(lines) + "\n").encode())
    record = {**record, "host": host_facts()}
    atomic_write(
        out / f"{name}.json", (json.dumps(record, indent=1, default=float) + "\n").encode()
    )
