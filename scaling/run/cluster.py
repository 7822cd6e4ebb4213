"""Local clusters that outlive the command that started them (``scaling cluster``).

``start`` runs each engine's own daemons, single-core workers bound to 127.0.0.1 with their
dashboards on: a Ray head (``ray start --head --block``, its CPUs the workers), a Dask
scheduler and ``dask worker --nworkers N --nthreads 1``, a Spark standalone master and N
one-core workers. Each daemon is started in a session of its own and recorded, by process id
and start time, in ``SCALING_HOME/clusters/ENGINE.json`` beside its address and dashboard
URLs; ``stop`` ends those process groups (and any process they spawned) and nothing else, so
other clusters on the host, embedded or not, are left alone. ``--join ADDRESS`` starts only
workers, for a cluster whose head runs elsewhere (or here: the test proves the path).

Nothing here imports an engine's framework: the daemons are its command-line programs and
the readiness checks are the HTTP endpoints of its dashboard.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from scaling.engines.net import free_port
from scaling.errors import EngineError, UsageError, check_choice
from scaling.results import atomic_write

ENGINES = ("ray", "dask", "spark")
HOST = "127.0.0.1"
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def home() -> Path:
    """Where clusters and submitted jobs are recorded: ``SCALING_HOME``, else ``~/.scaling``."""
    return Path(os.environ.get("SCALING_HOME") or Path.home() / ".scaling")


@dataclass(kw_only=True)
class Process:
    """One daemon this program started: a process-group leader, known by id and start time
    (a pid the system has since given to another program has another start time)."""

    pid: int
    started: float
    role: str
    log: str

    def alive(self) -> bool:
        import psutil

        try:
            return abs(psutil.Process(self.pid).create_time() - self.started) < 0.05
        except psutil.NoSuchProcess:
            return False


@dataclass(kw_only=True)
class Cluster:
    """What ``scaling cluster start`` started: enough to use it, watch it and stop it."""

    engine: str
    workers: int
    address: str
    dashboards: dict[str, str]
    ports: list[int]
    started_at: str
    processes: list[Process] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return state_file(self.engine)

    def save(self) -> None:
        atomic_write(self.path, json.dumps(asdict(self), indent=1).encode())

    @classmethod
    def load(cls, engine: str) -> Cluster | None:
        path = state_file(engine)
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        data["processes"] = [Process(**p) for p in data["processes"]]
        return cls(**data)

    def live_workers(self) -> int | None:
        """Workers the cluster reports now, from its dashboard; ``None`` if it does not answer."""
        try:
            return _WORKERS[self.engine](self)
        except (OSError, ValueError, KeyError):
            return None


def state_file(engine: str) -> Path:
    return home() / "clusters" / f"{engine}.json"


def running(engine: str) -> Cluster | None:
    """The recorded cluster of ``engine`` if one of its daemons still runs."""
    cluster = Cluster.load(engine)
    if cluster is not None and any(p.alive() for p in cluster.processes):
        return cluster
    return None


def find(address: str) -> Cluster | None:
    """The running recorded cluster at ``address``, if any."""
    return next(
        (c for e in ENGINES if (c := running(e)) is not None and c.address == address), None
    )


# ------------------------------------------------------------------------------ start


def start(engine: str, workers: int, join: str | None = None, timeout: float = 120.0) -> Cluster:
    """Start a local cluster of ``workers`` single-core workers (or, with ``join``, only the
    workers, joining the cluster at that address); record it and wait until it is ready."""
    check_choice("engine", engine, ENGINES)
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    existing = running(engine)
    if existing is not None and join != existing.address:
        raise UsageError(
            f"a {engine} cluster started here runs at {existing.address}; "
            f"`scaling cluster stop {engine}` first, or use it"
        )
    logs = home() / "clusters" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    launch = _LAUNCHERS[engine]
    if join is None:
        cluster = launch(workers, logs)
    else:  # the workers are recorded with the cluster they join, if it was started here
        cluster = existing or Cluster(
            engine=engine, workers=0, address=join, dashboards={}, ports=[], started_at=_now()
        )
        cluster.processes += _JOINERS[engine](join, workers, logs)
        cluster.workers += workers
    cluster.save()
    _wait_ready(cluster, timeout)
    return cluster


def _spawn(argv: list[str], role: str, logs: Path, env: dict | None = None) -> Process:
    """Start a daemon in its own session (so that its group can be ended whole, and a closing
    terminal does not end it), its output in a log file."""
    import psutil

    log = logs / f"{role}-{int(time.time() * 1000)}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **THREADS, "SPARK_LOCAL_IP": HOST, **(env or {})},
        )
    return Process(
        pid=proc.pid, started=psutil.Process(proc.pid).create_time(), role=role, log=str(log)
    )


def _bin(name: str) -> str:
    """A console script of this environment (ray, dask), beside its Python."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else shutil.which(name) or name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


RAY_LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Ray turns ``--node-ip-address=127.0.0.1`` into the host's address, and then binds its
servers (GCS, raylet, workers, agents, the client server) to every interface; where it runs
no clusters (macOS, Windows; this variable) its node is loopback, and its servers bind there."""


def _ray(workers: int, logs: Path) -> Cluster:
    port, dashboard = free_port(HOST), free_port(HOST)
    # Its own temp dir: `ray start` writes the address of "the current cluster" there, where
    # an embedded engine's ray.init() would otherwise find it and join it.
    temp = Path(f"/tmp/scaling-ray-{port}")
    argv = [
        _bin("ray"), "start", "--head", "--block", f"--node-ip-address={HOST}",
        f"--port={port}", f"--num-cpus={workers}", "--num-gpus=0",
        "--include-dashboard=true", f"--dashboard-host={HOST}",
        f"--dashboard-port={dashboard}", f"--temp-dir={temp}", "--disable-usage-stats",
    ]  # fmt: skip
    head = _spawn(argv, "ray-head", logs, RAY_LOOPBACK)
    return Cluster(
        engine="ray",
        workers=workers,
        address=f"{HOST}:{port}",
        dashboards={"Ray dashboard": f"http://{HOST}:{dashboard}"},
        ports=[port, dashboard],
        started_at=_now(),
        processes=[head],
    )


def _ray_join(address: str, workers: int, logs: Path) -> list[Process]:
    argv = [
        _bin("ray"), "start", "--block", f"--address={address}", f"--node-ip-address={HOST}",
        f"--num-cpus={workers}", "--num-gpus=0", "--disable-usage-stats",
    ]  # fmt: skip
    return [_spawn(argv, "ray-workers", logs, RAY_LOOPBACK)]


def _dask(workers: int, logs: Path) -> Cluster:
    port, dashboard = free_port(HOST), free_port(HOST)
    address = f"tcp://{HOST}:{port}"
    argv = [
        _bin("dask"), "scheduler", "--host", HOST, "--port", str(port),
        "--dashboard-address", f"{HOST}:{dashboard}",
    ]  # fmt: skip
    scheduler = _spawn(argv, "dask-scheduler", logs)
    dashboards = {"Dask dashboard": f"http://{HOST}:{dashboard}/status"}
    return _joined("dask", workers, address, dashboards, [port, dashboard], scheduler, logs)


def _dask_join(address: str, workers: int, logs: Path) -> list[Process]:
    argv = [
        _bin("dask"), "worker", address, "--nworkers", str(workers), "--nthreads", "1",
        "--host", HOST, "--dashboard-address", f"{HOST}:0",
    ]  # fmt: skip
    return [_spawn(argv, "dask-workers", logs)]


def _spark_home() -> tuple[str, dict]:
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise UsageError("pyspark is not installed: pip install -e '.[spark]'")
    spark_home = str(Path(spec.origin).parent)
    return spark_home, {"SPARK_HOME": spark_home, "PYSPARK_PYTHON": sys.executable}


def _spark(workers: int, logs: Path) -> Cluster:
    port, ui = free_port(HOST), free_port(HOST)
    spark_home, env = _spark_home()
    argv = [
        f"{spark_home}/bin/spark-class", "org.apache.spark.deploy.master.Master",
        "--host", HOST, "--port", str(port), "--webui-port", str(ui),
    ]  # fmt: skip
    # No REST submission server on its fixed port 6066: Python drivers cannot use it anyway
    # (cluster deploy mode is for JVM applications), and a second cluster would clash on it.
    rest = {"SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}
    master = _spawn(argv, "spark-master", logs, {**env, **rest})
    dashboards = {"Spark master": f"http://{HOST}:{ui}"}
    return _joined("spark", workers, f"spark://{HOST}:{port}", dashboards, [port, ui], master, logs)


def _joined(
    engine: str,
    workers: int,
    address: str,
    dashboards: dict[str, str],
    ports: list[int],
    head: Process,
    logs: Path,
) -> Cluster:
    """A cluster of ``head`` (listening at ``ports[0]``) and ``workers`` that join it."""
    _wait_port(HOST, ports[0], 60, head)
    processes = [head, *_JOINERS[engine](address, workers, logs)]
    return Cluster(
        engine=engine,
        workers=workers,
        address=address,
        dashboards=dashboards,
        ports=ports,
        started_at=_now(),
        processes=processes,
    )


def _spark_join(address: str, workers: int, logs: Path) -> list[Process]:
    spark_home, env = _spark_home()
    argv = [
        f"{spark_home}/bin/spark-class", "org.apache.spark.deploy.worker.Worker",
        "--host", HOST, "--cores", "1", "--memory", "2g", "--webui-port", "0", address,
    ]  # fmt: skip
    return [_spawn(argv, f"spark-worker-{i}", logs, env) for i in range(workers)]


_LAUNCHERS = {"ray": _ray, "dask": _dask, "spark": _spark}
_JOINERS = {"ray": _ray_join, "dask": _dask_join, "spark": _spark_join}


# ------------------------------------------------------------------------------ readiness


def get_json(url: str, body: dict | None = None, timeout: float = 3.0):
    """GET (or, with ``body``, POST) a dashboard's JSON endpoint. Ray's dashboard asks for its
    token where token authentication is on: the one Ray's own clients send (``RAY_AUTH_TOKEN``,
    else the file at ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``)."""
    headers = {"Content-Type": "application/json"}
    if token := _ray_token():
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def _ray_token() -> str:
    if token := os.environ.get("RAY_AUTH_TOKEN"):
        return token.strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    return path.read_text().strip() if path.is_file() else ""


def _ray_workers(cluster: Cluster) -> int:
    url = cluster.dashboards["Ray dashboard"] + "/api/cluster_status"
    usage = get_json(url)["data"]["clusterStatus"]["loadMetricsReport"]["usage"]
    return int(usage["CPU"][1])


def _dask_workers(cluster: Cluster) -> int:
    url = cluster.dashboards["Dask dashboard"].removesuffix("/status") + "/json/identity.json"
    return len(get_json(url)["workers"])


def _spark_workers(cluster: Cluster) -> int:
    return int(get_json(cluster.dashboards["Spark master"] + "/json/")["aliveworkers"])


_WORKERS = {"ray": _ray_workers, "dask": _dask_workers, "spark": _spark_workers}


def _wait_port(host: str, port: int, timeout: float, process: Process) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if not process.alive():
                raise EngineError(f"{process.role} exited; see {process.log}") from None
            time.sleep(0.2)
    raise EngineError(f"{process.role} did not listen on {host}:{port} in {timeout:.0f} s")


def _wait_ready(cluster: Cluster, timeout: float) -> None:
    """Until the dashboard reports every worker (Ray: and its job API answers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p for p in cluster.processes if not p.alive()]
        if dead:
            stop(cluster.engine)
            raise EngineError(f"{dead[0].role} exited while starting; see {dead[0].log}")
        if not cluster.dashboards:  # workers that joined a head elsewhere: it counts them
            time.sleep(3)
            if all(p.alive() for p in cluster.processes):
                return
            continue
        if (cluster.live_workers() or 0) >= cluster.workers and _jobs_api_ready(cluster):
            return
        time.sleep(0.5)
    stop(cluster.engine)
    raise EngineError(
        f"the {cluster.engine} cluster did not report {cluster.workers} workers within "
        f"{timeout:.0f} s; logs in {home() / 'clusters' / 'logs'}"
    )


def _jobs_api_ready(cluster: Cluster) -> bool:
    if cluster.engine != "ray" or not cluster.dashboards:
        return True
    try:
        get_json(cluster.dashboards["Ray dashboard"] + "/api/jobs/")
        return True
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------------------ stop


def stop(engine: str, grace: float = 15.0) -> list[int]:
    """End every process group the recorded ``engine`` cluster started, and what they spawned
    (:func:`end_groups`); forget the cluster. Returns the pids ended."""
    cluster = Cluster.load(engine)
    if cluster is None:
        return []
    ended = end_groups(cluster.processes, grace)
    cluster.path.unlink(missing_ok=True)
    return ended


def end_groups(leaders: list[Process], grace: float) -> list[int]:
    """SIGTERM the process group of each leader still alive, then SIGKILL whatever of them
    and their descendants is left after ``grace`` seconds. Returns the pids ended."""
    import psutil

    procs = []
    for p in leaders:
        if not p.alive():
            continue
        leader = psutil.Process(p.pid)
        procs += [leader, *leader.children(recursive=True)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return [proc.pid for proc in procs]
