"""The daemons of ``scaling cluster``: each engine's head and workers, started where a
:class:`Place` says (this host's loopback, or a machine of a scale model) in sessions of their
own, and recorded as :class:`Process` es, so that ``stop`` ends exactly them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scaling.engines.net import free_port
from scaling.errors import UsageError

HOST = "127.0.0.1"
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def home() -> Path:
    """Where clusters and submitted jobs are recorded: ``SCALING_HOME``, else ``~/.scaling``."""
    return Path(os.environ.get("SCALING_HOME") or Path.home() / ".scaling")


@dataclass(frozen=True)
class Place:
    """Where a daemon runs: the address it binds, and what a command is run behind to run
    there (nothing on this host: on its loopback, or at an address of its own, ``--host``; a
    scale model's machine: its cgroup and namespace,
    :meth:`scaling.run.machines.ScaleModel.place`)."""

    host: str = HOST
    prefix: tuple[str, ...] = ()
    dilation: float = 1.0  # a scale model machine's D: the daemons' timers are slowed by it

    @property
    def on_machine(self) -> bool:
        """Whether it runs on a scale model's machine."""
        return bool(self.prefix)

    @property
    def own_address(self) -> bool:
        """Whether it binds an address other machines reach (the engines' default ports, and
        a Ray node's folder of its own), not this host's loopback."""
        return self.host != HOST

    def command(self, argv: list[str]) -> list[str]:
        return [*self.prefix, *argv]


LOOPBACK = Place()


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
            return abs(start_time(self.pid) - self.started) < 0.05
        except (ProcessLookupError, psutil.NoSuchProcess):
            return False


def start_time(pid: int) -> float:
    """When process ``pid`` started, as a mark that stays the same while it runs: on Linux,
    seconds since boot (``/proc/PID/stat``'s ``starttime``), which no clock update moves;
    elsewhere psutil's ``create_time``. psutil's on Linux is the boot time (``/proc/stat``'s
    ``btime``: whole seconds, recomputed from the wall clock) plus that field, so a clock
    correction moves it by a second (psutil#2541) and every daemon of a cluster that still ran
    read as gone at once (CI: a sweep's supervisor taken for dead, then `nothing to stop`)."""
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").is_file():
        import psutil

        return psutil.Process(pid).create_time()
    try:  # the fields after the command's closing parenthesis start at the third, state
        ticks = int(stat.read_text().rsplit(")", 1)[1].split()[19])
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM (``kill``, a scheduler's stop) raises :class:`KeyboardInterrupt` inside, as
    Ctrl-C does, so that what was built is removed on the way out (Python's default SIGTERM
    ends the process at once, leaving a scale model behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(kw_only=True)
class Head:
    """A cluster's head daemon, as started: where it listens and shows itself."""

    address: str
    dashboards: dict[str, str]
    ports: list[int]
    process: Process


def end(pids: list[int], grace: float, group: bool = False) -> list[int]:
    """SIGTERM each of ``pids`` (its process group, with ``group``), then SIGKILL what is
    left of them and their descendants after ``grace`` seconds. Returns the pids ended.

    A zombie counts as ended: a daemon whose starter has exited is reaped by the host's init,
    and an init that does not reap (a container's, without ``--init``) would otherwise hold
    every stop for its whole grace."""
    import psutil

    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
            leader = psutil.Process(pid)
            procs += [leader, *leader.children(recursive=True)]
            (os.killpg if group else os.kill)(pid, signal.SIGTERM)
    alive = _wait(procs, grace)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    _wait(alive, 5)
    return [proc.pid for proc in procs]


def _wait(procs: list, timeout: float) -> list:
    """Those of ``procs`` neither gone nor zombies after up to ``timeout`` seconds."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        _, procs = psutil.wait_procs(procs, timeout=0.1)
        procs = [p for p in procs if _status(p) not in (None, psutil.STATUS_ZOMBIE)]
        if not procs or time.monotonic() > deadline:
            return procs


def _status(proc) -> str | None:
    import psutil

    try:
        return proc.status()
    except psutil.NoSuchProcess:
        return None


def spawn(
    argv: list[str],
    role: str,
    logs: Path,
    env: dict | None = None,
    place: Place = LOOPBACK,
    keep: socket.socket | None = None,
) -> Process:
    """Start a daemon at ``place`` in a session of its own (so that its group can be ended
    whole, and a closing terminal does not end it), its output in a log file; ``keep``: a
    socket it inherits."""

    log = logs / f"{role}-{int(time.time() * 1000)}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            place.command(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **THREADS, "SPARK_LOCAL_IP": place.host, **(env or {})}
            | ({"SCALING_MACHINE": place.host} if place.on_machine else {}),
            pass_fds=() if keep is None else (keep.fileno(),),
        )
    return Process(pid=proc.pid, started=start_time(proc.pid), role=role, log=str(log))


def _bin(name: str) -> str:
    """A console script of this environment (ray, dask), beside its Python."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else shutil.which(name) or name


def _port(place: Place, default: int) -> int:
    """A port for a head daemon: a free one on loopback, ``default`` at an address of its own."""
    return default if place.own_address else free_port(HOST)


RAY_LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Ray turns ``--node-ip-address=127.0.0.1`` into the host's address, and then binds its
servers (GCS, raylet, workers, agents, the client server) to every interface; where it runs
no clusters (macOS, Windows; this variable) its node is loopback, and its servers bind there.
On a scale model's machines it binds their own addresses."""


def ray_token() -> str:
    """The token Ray's own clients send where token authentication is on (``RAY_AUTH_TOKEN``,
    else the file at ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``); "" where there is none."""
    if token := os.environ.get("RAY_AUTH_TOKEN"):
        return token.strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    return path.read_text().strip() if path.is_file() else ""


def _ray_env(place: Place) -> dict:
    """Token authentication on every node, as the engine asks for it (a head started alone
    turns it on, and a node that joins without it is refused)."""
    return {"RAY_AUTH_MODE": "token", **({} if place.own_address else RAY_LOOPBACK)}


def _ray_agent(place: Place) -> list[str]:
    """The node's dashboard agent on a port of its own: Ray's default, 52365, is fixed, and
    an embedded Ray running here (a notebook's, a test's) holds it; the agent failed to bind,
    took its raylet down, and job submission answered "No available agent" for good."""
    return [f"--dashboard-agent-listen-port={_port(place, 52365)}"]


def _ray(place: Place, logs: Path, workers: int) -> Head:
    port, dashboard = _port(place, 6379), _port(place, 8265)
    # Its own temp dir: `ray start` writes the address of "the current cluster" there, where
    # an embedded engine's ray.init() would otherwise find it and join it.
    temp = Path(f"/tmp/scaling-ray-{place.host if place.own_address else port}")
    argv = [
        _bin("ray"), "start", "--head", "--block", f"--node-ip-address={place.host}",
        f"--port={port}", f"--num-cpus={workers}", "--num-gpus=0",
        "--include-dashboard=true", f"--dashboard-host={place.host}",
        f"--dashboard-port={dashboard}", f"--temp-dir={temp}", "--disable-usage-stats",
        *_ray_agent(place),
    ]  # fmt: skip
    # `ray start` asks for a token it will not make (~/.ray/auth_token; an embedded Ray makes
    # one, so a first `scaling cluster start ray` on a new machine failed where one had run)
    if not ray_token():
        subprocess.run(
            [_bin("ray"), "get-auth-token", "--generate"],
            env={**os.environ, **_ray_env(place)}, capture_output=True, check=True, timeout=120,
        )  # fmt: skip
    head = spawn(argv, "ray-head", logs, _ray_env(place), place)
    return Head(
        address=f"{place.host}:{port}",
        dashboards={"Ray dashboard": f"http://{place.host}:{dashboard}"},
        ports=[port, dashboard],
        process=head,
    )


def _ray_join(address: str, workers: int, place: Place, logs: Path) -> list[Process]:
    argv = [
        _bin("ray"), "start", "--block", f"--address={address}",
        f"--node-ip-address={place.host}", f"--num-cpus={workers}", "--num-gpus=0",
        "--disable-usage-stats", *_ray_agent(place),
    ]  # fmt: skip
    if place.own_address:  # nodes on one host would share a session folder, sockets and all
        argv.append(f"--temp-dir=/tmp/scaling-ray-{place.host}")
    return [spawn(argv, "ray-workers", logs, _ray_env(place), place)]


def _dask(place: Place, logs: Path, workers: int) -> Head:
    port, dashboard = _port(place, 8786), _port(place, 8787)
    argv = [
        _bin("dask"), "scheduler", "--host", place.host, "--port", str(port),
        "--dashboard-address", f"{place.host}:{dashboard}",
    ]  # fmt: skip
    scheduler = spawn(argv, "dask-scheduler", logs, _dask_env(place), place)
    return Head(
        address=f"tcp://{place.host}:{port}",
        dashboards={"Dask dashboard": f"http://{place.host}:{dashboard}/status"},
        ports=[port, dashboard],
        process=scheduler,
    )


def _dask_join(address: str, workers: int, place: Place, logs: Path) -> list[Process]:
    argv = [
        _bin("dask"), "worker", address, "--nworkers", str(workers), "--nthreads", "1",
        "--host", place.host, "--dashboard-address", f"{place.host}:0",
    ]  # fmt: skip
    return [spawn(argv, "dask-workers", logs, _dask_env(place), place)]


def _dask_env(place: Place) -> dict[str, str]:
    from scaling.engines.dask import quiet_environ

    return quiet_environ(place.dilation)


def _spark_home() -> tuple[str, dict]:
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise UsageError("pyspark is not installed: pip install -e '.[spark]'")
    spark_home = str(Path(spec.origin).parent)
    return spark_home, {"SPARK_HOME": spark_home, "PYSPARK_PYTHON": sys.executable}


def _spark(place: Place, logs: Path, workers: int) -> Head:
    port, ui = _port(place, 7077), _port(place, 8080)
    spark_home, env = _spark_home()
    argv = [
        f"{spark_home}/bin/spark-class", "org.apache.spark.deploy.master.Master",
        "--host", place.host, "--port", str(port), "--webui-port", str(ui),
    ]  # fmt: skip
    # No REST submission server on its fixed port 6066: Python drivers cannot use it anyway
    # (cluster deploy mode is for JVM applications), and a second cluster would clash on it.
    rest = {"SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}
    master = spawn(argv, "spark-master", logs, {**env, **rest}, place)
    return Head(
        address=f"spark://{place.host}:{port}",
        dashboards={"Spark master": f"http://{place.host}:{ui}"},
        ports=[port, ui],
        process=master,
    )


def _spark_join(address: str, workers: int, place: Place, logs: Path) -> list[Process]:
    spark_home, env = _spark_home()
    argv = [
        f"{spark_home}/bin/spark-class", "org.apache.spark.deploy.worker.Worker",
        "--host", place.host, "--cores", "1", "--memory", "2g", "--webui-port", "0", address,
    ]  # fmt: skip
    return [spawn(argv, f"spark-worker-{i}", logs, env, place) for i in range(workers)]


LAUNCHERS = {"ray": _ray, "dask": _dask, "spark": _spark}
JOINERS = {"ray": _ray_join, "dask": _dask_join, "spark": _spark_join}
