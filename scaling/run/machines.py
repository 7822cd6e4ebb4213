"""A scale model of a cluster of several machines on this host: a network namespace per machine,
its CPU share a cgroup's quota, its link shaped; everything slowed by one factor D.

DieCast (Gupta et al., "DieCast: Testing Distributed Systems with an Accurate Scale Model",
NSDI 2007) runs a system on fewer physical machines by *time dilation*: slow every machine's CPU
and network by one factor D and the whole behaves as the larger system, D times slower. Mininet
(Lantz et al., HotNets 2010) runs each host as a network namespace joined by virtual links. Here:

- **machines**: a head (``head``, where daemons' heads and the driver run) and N workers
  (``m1`` .. ``mN``), each a network namespace ``scaling-TAG-NAME`` with its own address in
  ``10.77.K.0/24`` on a bridge that lives in a namespace of its own (``scaling-TAG-sw``): no
  address is added to the host's namespace and nothing is routed off the host;
- **CPU**: each machine's processes in a cgroup ``scaling/TAG/NAME`` whose quota is its share:
  with U usable cores and M machines of C cores (the head counts as one), D = M C / U (at
  least 1) and a machine gets C / D of a CPU, over a 10 ms period so that a short step is not
  throttled in 100 ms lumps; cgroup v1 (``cpu.cfs_quota_us``) or v2 (``cpu.max``);
- **links**: each machine's link shaped to RATE / D both ways (``tbf`` on both ends of its
  veth pair). No delay is emulated (``netem`` is missing on some kernels): the links keep this
  host's latency, dilated like the rest only in so far as the processes at each end are;
- **measured dilation**: a reference kernel (a GEMM and an argmin per block, one thread) timed
  inside a machine's cgroup against outside, at start: the factor a quota really gives, which
  is what times are divided by.

A machine runs a program through :meth:`ScaleModel.command`: the process joins the machine's
cgroup, then enters its namespace (``ip netns exec``, which remounts ``/sys``: the cgroup is
joined first); what it starts inherits both. :meth:`ScaleModel.stop` kills every process in
the machines' cgroups and removes the namespaces, links and cgroups it made, and nothing else;
:func:`clean` removes what a start killed half-way left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scaling.errors import EngineError, UsageError
from scaling.results import atomic_write
from scaling.run.daemons import Place, end, home
from scaling.units import link_rate

PREFIX = "scaling-"
"""Every namespace this module makes starts with it, and so does the cgroup folder."""
PERIOD_US = 10_000
"""The quota period: 10 ms, so that a short step is not throttled in 100 ms lumps."""
SUBNET = "10.77"
"""Machines get ``10.77.K.I``: a private range, inside the namespaces made here only."""
REGISTRY = Path("/run/scaling/machines")
"""Host-wide, a file per recorded model naming its record: records live in a ``SCALING_HOME``,
and :func:`clean` run from one home must leave alone a model recorded in another."""


def usable_cores() -> float:
    """The cores this process may use: its CPU affinity, capped by its cgroup's quota."""
    cores = float(len(os.sched_getaffinity(0)))
    with contextlib.suppress(OSError, ValueError):  # cgroup v1
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        if quota > 0:
            period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            cores = min(cores, quota / period)
    with contextlib.suppress(OSError, ValueError):  # cgroup v2
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, int(quota) / int(period))
    return cores


def dilation(machines: int, cores: int, usable: float) -> float:
    """D = M C / U, at least 1: what each machine's CPU and link are slowed by."""
    return max(1.0, machines * cores / usable)


# ---------------------------------------------------------------------------- cgroups


@dataclass(frozen=True)
class CpuControl:
    """Where CPU cgroups are made, v1 or v2: ``root`` is this module's folder in it."""

    version: int
    root: Path

    @classmethod
    def find(cls) -> CpuControl:
        """cgroup v2 where its root offers the ``cpu`` controller, else v1's ``cpu``."""
        for line in Path("/proc/mounts").read_text().splitlines():
            _, where, kind, *_ = line.split()
            if kind == "cgroup2" and "cpu" in _read(Path(where) / "cgroup.controllers").split():
                return cls(2, Path(where) / "scaling")
        for line in Path("/proc/mounts").read_text().splitlines():
            _, where, kind, options, *_ = line.split()
            if kind == "cgroup" and "cpu" in options.split(","):
                return cls(1, Path(where) / "scaling")
        raise UsageError("no CPU cgroup controller is mounted (cgroup v1 cpu or v2 cpu.max)")

    def make(self, path: Path, share: float) -> None:
        """A cgroup at ``path`` limited to ``share`` of a CPU per period."""
        quota = max(1_000, round(share * PERIOD_US))  # the kernel's least quota is 1 ms
        if self.version == 2:  # the controller enabled from the mount down to the machine
            parent = self.root.parent
            for folder in (self.root, self.root / path.relative_to(self.root).parts[0], path):
                with contextlib.suppress(OSError):  # on already
                    (parent / "cgroup.subtree_control").write_text("+cpu")
                folder.mkdir(exist_ok=True)
                parent = folder
            (path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(quota))

    @staticmethod
    def pids(path: Path) -> list[int]:
        return [int(p) for p in _read(path / "cgroup.procs").split()]


def _read(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text()
    return ""


# ---------------------------------------------------------------------------- machines


@dataclass(frozen=True, kw_only=True)
class Machine:
    """One machine of a scale model: its namespace, address and cgroup."""

    name: str
    netns: str
    address: str
    cgroup: str


@dataclass(kw_only=True)
class ScaleModel:
    """N + 1 machines on this host (see the module's docstring), recorded so that another
    command can use them and ``stop`` can remove them."""

    tag: str
    machines: list[Machine]
    cores: int
    link: str
    rate: float  # the modelled link, bits per second
    usable: float  # cores of this host
    dilation: float  # D = M C / U
    measured: float | None = None  # the dilation the quota gave, measured at start
    cgroup_version: int = 1
    created_at: float = field(default_factory=time.time)

    @property
    def head(self) -> Machine:
        return self.machines[0]

    @property
    def workers(self) -> list[Machine]:
        return self.machines[1:]

    @property
    def factor(self) -> float:
        """What measured times are divided by: the measured dilation, else the nominal."""
        return self.measured or self.dilation

    def describe(self) -> dict:
        """What a record says of the cluster it ran on."""
        return {
            "machines": len(self.workers),
            "cores_per_machine": self.cores,
            "dilation": self.factor,
            "nominal_dilation": self.dilation,
            "link": self.link,
            "link_bits_per_second": self.rate,
            "host_cores": self.usable,
        }

    def machine(self, name: str) -> Machine:
        for m in self.machines:
            if m.name == name:
                return m
        names = ", ".join(m.name for m in self.machines)
        raise UsageError(f"no machine {name!r} in this scale model; it has {names}")

    def command(self, machine: Machine, argv: list[str]) -> list[str]:
        """``argv`` run on ``machine``: joined to its cgroup first (``ip netns exec`` remounts
        ``/sys``), then in its namespace."""
        procs = str(Path(machine.cgroup) / "cgroup.procs")
        enter = ["ip", "netns", "exec", machine.netns]
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *enter, *argv]

    def driver(self, argv: list[str]) -> tuple[list[str], dict[str, str]]:
        """``argv`` as a driver on the head: its command and environment (the head's address
        for Spark's driver and for the gangs to meet at; ``SCALING_MACHINE`` says it runs
        there already)."""
        head = self.head.address
        env = {**os.environ, "SCALING_MACHINE": head, "SPARK_LOCAL_IP": head,
               "SCALING_DRIVER_HOST": head}  # fmt: skip
        return self.command(self.head, argv), env

    def place(self, machine: Machine) -> Place:
        """Where daemons on ``machine`` run (:mod:`scaling.run.daemons`), slowed by D."""
        return Place(machine.address, tuple(self.command(machine, [])), self.factor)

    # -- faults -----------------------------------------------------------------------

    def partition(self, machine: Machine) -> None:
        """Take ``machine``'s link down at the switch: what it sends and what is sent to it
        goes nowhere, and its connections stall (no reset), as behind a failed switch port."""
        self._port(machine, "down")

    def heal(self, machine: Machine) -> None:
        """Bring ``machine``'s link up again."""
        self._port(machine, "up")

    def _port(self, machine: Machine, state: str) -> None:
        _run(["ip", "-n", self.switch, "link", "set", self.port(machine), state])

    @property
    def switch(self) -> str:
        """The namespace of the bridge that every machine's link plugs into."""
        return f"{PREFIX}{self.tag}-sw"

    def port(self, machine: Machine) -> str:
        """``machine``'s end of its link on the bridge (an interface name: 15 characters)."""
        return f"sc{self.tag}p{self.machines.index(machine)}"

    # -- state ------------------------------------------------------------------------

    @staticmethod
    def path(tag: str) -> Path:
        return home() / "machines" / f"{tag}.json"

    def save(self) -> None:
        self.path(self.tag).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path(self.tag), json.dumps(asdict(self), indent=1).encode())
        REGISTRY.mkdir(parents=True, exist_ok=True)
        atomic_write(REGISTRY / self.tag, str(self.path(self.tag).resolve()).encode())

    @classmethod
    def load(cls, tag: str) -> ScaleModel | None:
        with contextlib.suppress(FileNotFoundError):
            data = json.loads(cls.path(tag).read_text())
            return cls(**data | {"machines": [Machine(**m) for m in data["machines"]]})
        return None

    # -- stop -------------------------------------------------------------------------

    def stop(self, grace: float = 10.0) -> list[int]:
        """Kill every process in the machines' cgroups (SIGTERM, then SIGKILL after
        ``grace`` seconds), remove the namespaces (their links go with them), the cgroups and
        the record. Returns the pids ended."""
        ended = end([pid for m in self.machines for pid in CpuControl.pids(Path(m.cgroup))], grace)
        for m in self.machines:
            _quiet(["ip", "netns", "delete", m.netns])
        _quiet(["ip", "netns", "delete", self.switch])
        for m in self.machines:
            with contextlib.suppress(OSError):
                Path(m.cgroup).rmdir()
        folder = Path(self.machines[0].cgroup).parent
        for empty in (folder, folder.parent):  # the model's, then this module's if it was last
            with contextlib.suppress(OSError):
                empty.rmdir()
        self.path(self.tag).unlink(missing_ok=True)
        (REGISTRY / self.tag).unlink(missing_ok=True)
        return ended


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise EngineError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout}")


def _quiet(argv: list[str]) -> None:
    subprocess.run(argv, capture_output=True)


def _capable() -> bool:
    """Whether this process may make namespaces and cgroups: root's CAP_NET_ADMIN (bit 12)
    and CAP_SYS_ADMIN (bit 21), which a container's root or a capability-less root lacks."""
    status = Path("/proc/self/status").read_text()
    effective = int(re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    return os.geteuid() == 0 and all(effective >> bit & 1 for bit in (12, 21))


def _check_root() -> None:
    if not _capable():
        raise UsageError(
            "a scale model makes network namespaces and CPU cgroups, which needs root: run "
            "it as root (sudo -E .venv/bin/scaling ...), or in a container with "
            "CAP_NET_ADMIN and CAP_SYS_ADMIN"
        )
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            raise UsageError(f"a scale model needs `{tool}` (apt-get install iproute2)")


def why_not() -> str | None:
    """Why no scale model can be built here, in a line (None: one can)."""
    try:
        _check_root()
        CpuControl.find()
    except UsageError as e:
        return str(e)
    return None


# ---------------------------------------------------------------------------- build


def build(
    machines: int, cores: int = 1, link: str = "10gbit", measure: bool = True, at_least: float = 1.0
) -> ScaleModel:
    """A head and ``machines`` worker machines of ``cores`` cores each, on links of ``link``,
    every one slowed by D = (machines + 1) cores / this host's cores, or ``at_least``, whichever
    is larger (a model that fits the host slowed on purpose: to check the emulation against
    real workers of the same count); recorded.

    A failure half-way removes what was made (and :func:`clean` what a killed start left).
    """
    _check_root()
    if not isinstance(machines, int) or machines < 1:
        raise UsageError(f"--machines must be an integer >= 1, got {machines!r}")
    if not isinstance(cores, int) or cores < 1:
        raise UsageError(f"--cores-per-machine must be an integer >= 1, got {cores!r}")
    rate = link_rate(link)
    if not at_least >= 1:
        raise UsageError(f"--dilation must be >= 1, got {at_least!r}")
    clean()  # what a start killed half-way left
    control = CpuControl.find()
    tag = uuid.uuid4().hex[:6]
    usable = usable_cores()
    d = max(at_least, dilation(machines + 1, cores, usable))
    subnet = f"{SUBNET}.{_free_subnet()}"
    names = ["head", *(f"m{i}" for i in range(1, machines + 1))]
    model = ScaleModel(
        tag=tag,
        machines=[
            Machine(
                name=name,
                netns=f"{PREFIX}{tag}-{name}",
                address=f"{subnet}.{i + 1}",
                cgroup=str(control.root / tag / name),
            )
            for i, name in enumerate(names)
        ],
        cores=cores,
        link=link,
        rate=rate,
        usable=usable,
        dilation=d,
        cgroup_version=control.version,
    )
    model.save()  # first: a start killed from here on leaves a record stop can follow
    try:
        _wire(model, rate / d)
        for m in model.machines:
            control.make(Path(m.cgroup), cores / d)
        if measure:
            model.measured = measure_dilation(model)
            model.save()
    except BaseException:
        model.stop()
        raise
    return model


def _free_subnet() -> int:
    """A third octet no recorded scale model on this host uses."""
    used = set()
    for path in _recorded().values():
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            used.add(int(json.loads(path.read_text())["machines"][0]["address"].split(".")[2]))
    return next(k for k in range(1, 255) if k not in used)


def _wire(model: ScaleModel, bits_per_second: float) -> None:
    """The switch (a bridge in a namespace of its own), and each machine's veth pair to it,
    addressed, up, and shaped both ways."""
    switch = model.switch
    _run(["ip", "netns", "add", switch])
    _run(["ip", "-n", switch, "link", "add", "br0", "type", "bridge"])
    _run(["ip", "-n", switch, "link", "set", "br0", "up"])
    for i, m in enumerate(model.machines):
        port, inside = model.port(m), f"sc{model.tag}i{i}"  # at most 15 characters
        _run(["ip", "netns", "add", m.netns])
        _run(["ip", "link", "add", port, "type", "veth", "peer", "name", inside])
        _run(["ip", "link", "set", port, "netns", switch])
        _run(["ip", "link", "set", inside, "netns", m.netns])
        _run(["ip", "-n", switch, "link", "set", port, "master", "br0", "up"])
        _run(["ip", "-n", m.netns, "link", "set", inside, "name", "eth0"])
        _run(["ip", "-n", m.netns, "addr", "add", f"{m.address}/24", "dev", "eth0"])
        _run(["ip", "-n", m.netns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", m.netns, "link", "set", "lo", "up"])
        for ns, dev in ((m.netns, "eth0"), (switch, port)):  # out of the machine, and in
            _run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root",
                  *_tbf(bits_per_second)])  # fmt: skip


BURST = 3100
"""Bytes a link sends beyond its rate: two frames, so that every message pays the rate (``tbf``
cuts the kernel's larger segments itself). 10 ms of the rate let 33 kB through in 0.37 ms where
200 Mbit/s takes 1.32 ms (two frames: 1.31 ms; a ping-pong between two namespaces here)."""


def _tbf(bits_per_second: float) -> list[str]:
    """A token bucket at ``bits_per_second``, :data:`BURST` deep, and 50 ms of queue."""
    return ["tbf", "rate", f"{int(bits_per_second)}bit", "burst", str(BURST), "latency", "50ms"]


# ---------------------------------------------------------------------------- dilation

REFERENCE = """
import time, numpy as np
from threadpoolctl import threadpool_limits
rng = np.random.default_rng(0)
X, C = rng.standard_normal((4096, 32)), rng.standard_normal((16, 32))
def once():
    for block in range(0, 4096, 512):
        np.argmin(X[block:block + 512] @ C.T, axis=1)
with threadpool_limits(1):
    for _ in range(20):
        once()
    t0 = time.perf_counter()
    for _ in range({repeat}):
        once()
print(time.perf_counter() - t0)
"""
"""The reference kernel: k-means' assignment on blocks of rows (a GEMM, an argmin), one thread,
timed as a whole loop of many periods (a share is a quota per period: runs shorter than a
period would mostly slip between the throttles)."""


def measure_dilation(model: ScaleModel, repeat: int = 200, pairs: int = 5) -> float:
    """How much slower the reference kernel runs on a machine of ``model`` than on this host:
    the fastest of ``pairs`` interleaved runs inside over the fastest outside (noise on a
    shared host only adds time; a median of three ratios once read 1.58 at D = 1)."""
    outside = [sys.executable, "-c", REFERENCE.format(repeat=repeat)]
    inside = model.command(model.workers[0], outside)
    runs = [
        float(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
        for _ in range(pairs)
        for argv in (inside, outside)
    ]
    return round(min(runs[0::2]) / min(runs[1::2]), 3)


# ---------------------------------------------------------------------------- clean


def running() -> list[ScaleModel]:
    """The scale models recorded here."""
    found = []
    for path in sorted((home() / "machines").glob("*.json")):
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            if (model := ScaleModel.load(path.stem)) is not None:
                found.append(model)
    return found


def _recorded() -> dict[str, Path]:
    """Every scale model recorded on this host, whatever its home: tag -> its record."""
    found = {entry.name: Path(_read(entry)) for entry in REGISTRY.glob("*")}
    return {tag: record for tag, record in found.items() if record.is_file()}


def clean() -> list[str]:
    """Remove what a scale model start killed half-way left: namespaces named like this
    module's with no record on this host, and empty cgroups of none. Returns what it removed."""
    known = set(_recorded()) | {m.tag for m in running()}
    for entry in REGISTRY.glob("*"):  # a model stopped, or its home removed
        if entry.name not in known:
            entry.unlink(missing_ok=True)
    removed = []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for name in re.findall(rf"^({re.escape(PREFIX)}(\w+)-\S+)", listing, re.M):
        full, tag = name
        if tag not in known:
            _quiet(["ip", "netns", "delete", full])
            removed.append(full)
    with contextlib.suppress(UsageError):
        root = CpuControl.find().root
        for folder in sorted(root.glob("*")) if root.is_dir() else []:
            if folder.is_dir() and folder.name not in known:
                for machine in folder.iterdir():
                    if machine.is_dir() and not CpuControl.pids(machine):
                        with contextlib.suppress(OSError):
                            machine.rmdir()
                with contextlib.suppress(OSError):
                    folder.rmdir()
                    removed.append(str(folder))
    return removed
