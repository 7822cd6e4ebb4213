"""Local clusters that outlive the command that started them (``scaling cluster``).

``start`` runs each engine's own daemons, single-core workers bound to 127.0.0.1 with their
dashboards on: a Ray head (``ray start --head --block``, its CPUs the workers), a Dask
scheduler and ``dask worker --nworkers N --nthreads 1``, a Spark standalone master and N
one-core workers. Each daemon is started in a session of its own and recorded, by process id
and start time, in ``SCALING_HOME/clusters/ENGINE.json`` beside its address and dashboard
URLs; ``stop`` ends those process groups (and any process they spawned) and nothing else, so
other clusters on the host, embedded or not, are left alone. ``--join ADDRESS`` starts only
workers, for a cluster whose head runs elsewhere (or here: the test proves the path).

``--machines N`` starts the same daemons on a scale model of N machines instead
(:mod:`scaling.run.machines`): the head's daemon and the driver on the head machine, ``C``
workers on each worker machine, each bound to its machine's address; the dashboards reach the
host's loopback through a forwarder (:mod:`scaling.run.forward`).

Nothing here imports an engine's framework: the daemons are its command-line programs and
the readiness checks are the HTTP endpoints of its dashboard.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from scaling.errors import EngineError, UsageError, check_choice
from scaling.results import atomic_write
from scaling.run import forward
from scaling.run.daemons import (
    HOST,
    JOINERS,
    LAUNCHERS,
    LOOPBACK,
    Head,
    Place,
    Process,
    end,
    home,
    ray_token,
    spawn,
)

ENGINES = ("ray", "dask", "spark")


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
    machines: str | None = None  # the tag of the scale model it runs on
    emulation: dict | None = None  # what records say of that model (ScaleModel.describe)

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


def start(
    engine: str,
    workers: int,
    join: str | None = None,
    timeout: float = 120.0,
    *,
    host: str | None = None,
    machines: int | None = None,
    cores: int = 1,
    link: str = "10gbit",
    dilation: float = 1.0,
) -> Cluster:
    """Start a local cluster of ``workers`` single-core workers (or, with ``join``, only the
    workers, joining the cluster at that address; with ``machines``, a scale model of that
    many machines of ``cores`` workers each on links of ``link``, slowed by at least
    ``dilation``); record it and wait until it is ready. Its daemons bind this host's loopback,
    or ``host``, an address of this host that other machines reach."""
    try:
        return _start(engine, workers, join, timeout, host, machines, cores, link, dilation)
    except _Overloaded:
        if join is not None:  # the head it joins was stopped with it
            raise
        return _start(engine, workers, join, timeout, host, machines, cores, link, dilation)


def _start(engine, workers, join, timeout, host, machines, cores, link, dilation) -> Cluster:
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
    place = LOOPBACK if host is None else _own(host)
    if machines is not None:
        if join is not None or host is not None:
            raise UsageError("--machines builds a cluster of its own: leave out --join and --host")
        cluster = _on_machines(engine, machines, cores, link, dilation, logs)
    elif join is None:
        cluster = _cluster(engine, LAUNCHERS[engine](place, logs, workers), workers)
        if engine != "ray":  # Ray's head runs its workers itself
            _wait_port(place, place.host, cluster.ports[0], 60, cluster.processes[0])
            cluster.processes += JOINERS[engine](cluster.address, workers, place, logs)
    else:  # the workers are recorded with the cluster they join, if it was started here
        cluster = existing or Cluster(
            engine=engine, workers=0, address=join, dashboards={}, ports=[], started_at=_now()
        )
        cluster.processes += JOINERS[engine](join, workers, place, logs)
        cluster.workers += workers
    cluster.save()
    _wait_ready(cluster, timeout)
    return cluster


def _own(host: str) -> Place:
    """Where daemons bound to ``host`` run; ``host`` must be an address of this machine."""
    try:
        with socket.socket() as s:
            s.bind((host, 0))
    except (OSError, OverflowError) as e:
        raise UsageError(
            f"--host {host}: not an address of this machine ({getattr(e, 'strerror', e)}); "
            "give one that `ip -4 addr` lists and the other machines reach"
        ) from None
    return Place(host=host)


def _cluster(engine: str, head: Head, workers: int) -> Cluster:
    return Cluster(
        engine=engine,
        workers=workers,
        address=head.address,
        dashboards=head.dashboards,
        ports=head.ports,
        started_at=_now(),
        processes=[head.process],
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _on_machines(
    engine: str, machines: int, cores: int, link: str, dilation: float, logs: Path
) -> Cluster:
    """The engine's head daemon on a scale model's head machine, ``cores`` workers on each of
    its worker machines, the dashboards forwarded to this host's loopback."""
    from scaling.run import machines as scale

    model = scale.build(machines, cores, link, at_least=dilation)
    try:
        head = model.place(model.head)
        cluster = _cluster(engine, LAUNCHERS[engine](head, logs, 0), 0)
        cluster.machines, cluster.emulation = model.tag, model.describe()
        cluster.save()  # from here on, `stop` finds what was started
        _wait_port(head, head.host, cluster.ports[0], 60, cluster.processes[0])
        for m in model.workers:
            place = model.place(m)
            cluster.processes += JOINERS[engine](cluster.address, cores, place, logs)
        cluster.workers = machines * cores
        forwarded = {}
        for name, url in cluster.dashboards.items():
            port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
            listener = forward.listening()
            argv = [sys.executable, "-m", "scaling.run.forward", str(listener.fileno()),
                    head.host, str(port)]  # fmt: skip
            cluster.processes.append(spawn(argv, "forward", logs, place=head, keep=listener))
            loopback = f"{HOST}:{listener.getsockname()[1]}"
            forwarded[name] = url.replace(f"{head.host}:{port}", loopback)
            listener.close()
        cluster.dashboards = forwarded
    except BaseException:
        stop(engine)
        model.stop()
        raise
    return cluster


# ------------------------------------------------------------------------------ readiness


def get_json(url: str, body: dict | None = None, timeout: float = 3.0):
    """GET (or, with ``body``, POST) a dashboard's JSON endpoint. Ray's dashboard asks for its
    token where token authentication is on: the one Ray's own clients send (``RAY_AUTH_TOKEN``,
    else the file at ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``)."""
    headers = {"Content-Type": "application/json"}
    if token := ray_token():
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


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


def _wait_port(place: Place, host: str, port: int, timeout: float, process: Process) -> None:
    """Until something listens at ``host:port``, as seen from ``place``."""
    probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=1).close()"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not place.on_machine:
                socket.create_connection((host, port), timeout=1).close()
                return
            argv = place.command([sys.executable, "-c", probe])
            if subprocess.run(argv, capture_output=True).returncode == 0:
                return
            raise OSError
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
            said = f"{dead[0].role} exited while starting; see {dead[0].log}"
            log = Path(dead[0].log)
            if log.is_file() and RAY_OVERLOADED in log.read_text(errors="replace"):
                raise _Overloaded(f"{said} (the host was too busy for Ray's 30 s)")
            raise EngineError(said)
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


RAY_OVERLOADED = "timed out during startup"
"""What ``ray start`` says when its raylet did not register with the GCS in 30 s, a wait
hard-coded in Ray (2.60, ``ray/_private/node.py``) that a busy host outlasts (a test suite
beside a CPU hog on every core): the start is tried once more."""


class _Overloaded(EngineError):
    """A start that the host was too busy for."""


def _jobs_api_ready(cluster: Cluster) -> bool:
    if cluster.engine != "ray" or not cluster.dashboards:
        return True
    try:
        get_json(cluster.dashboards["Ray dashboard"] + "/api/jobs/")
        return True
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------------------ stop


def stop(engine: str, grace: float = 5.0) -> list[int]:
    """End every process group the recorded ``engine`` cluster started, and what they spawned
    (:func:`~scaling.run.daemons.end`); forget the cluster. Returns the pids ended.

    ``grace``: Ray's ``ray start --block`` and its GCS take 15 s and more to honour SIGTERM,
    and a stopped cluster holds nothing worth the wait (its results are in the store)."""
    cluster = Cluster.load(engine)
    if cluster is None:
        return []
    ended = end([p.pid for p in cluster.processes if p.alive()], grace, group=True)
    if cluster.machines is not None:  # what is left in its machines, and the machines
        from scaling.run.machines import ScaleModel

        if (model := ScaleModel.load(cluster.machines)) is not None:
            ended += model.stop(grace)
    cluster.path.unlink(missing_ok=True)
    return ended
