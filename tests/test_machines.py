"""The scale model (:mod:`scaling.run.machines`): machines of their own on this host, their CPU
shares and links, a cluster on them that gives the reference result, labelled as emulated, a
worker cut off the network that fails its step in time, and a stop that leaves nothing. CI
runs as root, as these need (namespaces, cgroups)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from jobs import kmeans
from scaling.cli import main
from scaling.present.figures import run_figures
from scaling.run import cluster, machines
from scaling.run.runner import run_job
from scaling.run.spec import RunSpec


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _netns() -> set[str]:
    """The network namespaces on this host. A model's start removes those a killed start left
    (no record on this host), so a test checks that nothing of its own is left: a subset."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def _on(model, machine, code: str, **kwargs) -> subprocess.CompletedProcess:
    argv = model.command(machine, [sys.executable, "-c", code])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)


def test_without_root_it_says_so_in_one_line(home):
    # root without capabilities, as a container's root may be: it still reads this checkout
    code = "from scaling.run import machines; machines.build(2)"
    done = subprocess.run(
        ["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-c",
         f"import sys; from scaling.errors import UsageError\ntry:\n    {code}\n"
         "except UsageError as e:\n    print(e); sys.exit(2)"],
        capture_output=True, text=True, env={**os.environ, "SCALING_HOME": "/tmp"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "needs root" in done.stdout and done.stdout.count("\n") == 1


def test_machines_of_their_own_with_shares_and_shaped_links(home):
    before = _netns()
    model = machines.build(2, cores=1, link="100mbit")
    try:
        addresses = [m.address for m in model.machines]
        assert len(set(addresses)) == 3
        d = machines.dilation(3, 1, machines.usable_cores())
        assert model.dilation == pytest.approx(d)
        for m in model.machines:
            quota = Path(m.cgroup, "cpu.cfs_quota_us" if model.cgroup_version == 1 else "cpu.max")
            assert int(quota.read_text().split()[0]) == max(1000, round(10_000 / d))
        # measured: a quota slows the reference kernel by about D (a noisy, shared host)
        assert 0.5 * d < model.measured < 3 * d
        # none of the machines' addresses is the host's
        host = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
        assert not any(a in host for a in addresses)
        # machine to machine through the shaped links: about 100 Mbit/s / D, never faster
        a, b = model.workers
        server = subprocess.Popen(
            model.command(b, [sys.executable, "-c", (
                "import socket, time\n"
                f"s = socket.create_server(({b.address!r}, 5001)); c, _ = s.accept()\n"
                "n, t0 = 0, time.perf_counter()\n"
                "while data := c.recv(1 << 16):\n    n += len(data)\n"
                "print(n, time.perf_counter() - t0)"
            )]),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1)
        sent = _on(model, a, f"import socket; socket.create_connection(({b.address!r}, 5001))"
                   ".sendall(b'x' * 4_000_000)")  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        received, seconds = server.communicate(timeout=60)[0].split()
        rate = int(received) * 8 / float(seconds)
        assert int(received) == 4_000_000
        assert 0.2 * 100e6 / d < rate < 1.3 * 100e6 / d
    finally:
        model.stop()
    assert _netns() <= before
    assert not Path(model.machines[0].cgroup).parent.exists()
    assert not machines.ScaleModel.path(model.tag).exists()


def test_a_start_killed_half_way_leaves_nothing_the_next_cannot_clean(home, tmp_path, monkeypatch):
    kept = machines.build(1, measure=False)
    try:
        subprocess.run(["ip", "netns", "add", "scaling-dead00-head"], check=True)
        stray = Path(kept.machines[0].cgroup).parent.parent / "dead00" / "head"
        stray.mkdir(parents=True)
        monkeypatch.setenv("SCALING_HOME", str(tmp_path / "another"))  # another user's home
        removed = machines.clean()
        assert "scaling-dead00-head" in removed
        assert "scaling-dead00-head" not in _netns() and not stray.parent.exists()
        assert kept.head.netns in _netns()  # a model recorded in any home is left alone
    finally:
        monkeypatch.setenv("SCALING_HOME", str(home))
        kept.stop()
    assert kept.tag not in machines._recorded()


STEP_TIMEOUT = 5
PARTITIONED = f"""
import sys, time
from jobs import kmeans
from scaling.errors import ScalingError
from scaling.run import cluster
from scaling.run.machines import ScaleModel
from scaling.run.runner import run_job
from scaling.run.spec import RunSpec

found = cluster.running(sys.argv[1])
model = ScaleModel.load(found.machines)
config = kmeans.KMeansConfig(k=4, max_iter=50, tol=0.0, init="random")
cut = []

def partition(i, measure):  # after the second iteration: loaded, iterating
    if i == 2:
        model.partition(model.machine("m2"))
        cut.append(time.monotonic())

spec = RunSpec(job=kmeans.JOB, engine=found.engine, workers=2, address=found.address,
               source=kmeans.JOB.synthetic(20_000, 8, 0, config), config=config,
               step_timeout={STEP_TIMEOUT}, max_failures=0)
try:
    run_job(spec, on_iteration=partition)
except ScalingError as e:
    print(time.monotonic() - cut[0] if cut else "not-partitioned", e)
    sys.exit(2)
"""


@pytest.mark.parametrize("engine", ["dask", "ray", "spark"])
def test_machines_give_the_reference_labelled_emulated_and_a_cut_worker_fails_in_time(
    engine, home, tmp_path, capfd
):
    config = kmeans.KMeansConfig(k=4, max_iter=5, tol=0.0, init="random")
    source = kmeans.JOB.synthetic(20_000, 8, 0, config)
    local = run_job(
        RunSpec(job=kmeans.JOB, engine="local", workers=2, source=source, config=config)
    ).record
    before = _netns()
    assert main(["cluster", "start", engine, "--machines", "2", "--link", "1gbit"]) == 0
    try:
        started = cluster.running(engine)
        assert started.machines and started.emulation["machines"] == 2
        dashboard = next(iter(started.dashboards.values()))
        assert dashboard.startswith("http://127.0.0.1:")  # the head's, on this host
        urllib.request.urlopen(dashboard, timeout=10).read()
        # in the all-reduce style: a gang whose members meet across machines (the partition
        # test and the sweep below run the driver loop)
        argv = ["run", "kmeans", "--cluster", engine, "--workers", "2", "--rows", "20000",
                "--features", "8", "--k", "4", "--max-iter", "5", "--tol", "0", "--init",
                "random", "--execution", "allreduce", "--out", str(tmp_path / "out")]  # fmt: skip
        capfd.readouterr()
        assert main(argv) == 0
        table = capfd.readouterr().out
        assert "emulated (" in table and "clock" in table
        records = [json.loads(line) for line in next((tmp_path / "out").glob("*/records.jsonl"))
                   .read_text().splitlines()]  # fmt: skip
        for r in records:
            # labelled with the dilation the model measured at start (on a busy host, less
            # than the quotas' nominal one: other work shares the cores)
            assert r["emulation"] == started.emulation
            assert r["config"]["execution"] == "allreduce"
            assert r["quality"]["inertia"] == pytest.approx(local["quality"]["inertia"], 1e-9)
            shown, d = run_figures(r).timeline["bars"], r["emulation"]["dilation"]
            for bar, raw in zip(shown, r["timeline"]["bars"], strict=True):  # on its clock
                assert bar["end"] == pytest.approx(raw["end"] / d)
        if engine == "dask":  # Ray and Spark pass it too (60 s more of the suite's time)
            _timers_are_slowed(started)
            _cut_worker_fails_in_time(started)
    finally:
        assert main(["cluster", "stop", engine]) == 0
    assert cluster.running(engine) is None
    assert _netns() <= before


def test_host_and_join_across_machines(home, tmp_path):
    """cluster/README.md's several machines, across namespaces: a head and a worker bound to
    one machine's address (``--host``), a worker on another that joins it (``--join``), and a
    driver on the first whose gangs (the all-reduce mesh, LightGBM, torch) meet across them."""
    before = _netns()
    model = machines.build(1, measure=False)  # a head and one machine; the engine is ours

    _, env = model.driver([])  # the head's address, for the gangs to meet at

    def on(machine, *argv: str) -> subprocess.CompletedProcess:
        command = model.command(machine, [sys.executable, "-m", "scaling.cli", *argv])
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    head, other = model.head, model.workers[0]
    address = f"tcp://{head.address}:8786"
    try:
        started = on(head, "cluster", "start", "dask", "--host", head.address, "--workers", "1")
        assert started.returncode == 0 and address in started.stdout, started.stderr
        joined = on(other, "cluster", "start", "dask", "--join", address, "--host",
                    other.address, "--workers", "1")  # fmt: skip
        assert joined.returncode == 0, joined.stderr
        seen = _on(model, head, f"from distributed import Client; c = Client({address!r}); "
                   "print(*c.sync(c.scheduler.identity, n_workers=-1)['workers'])")  # fmt: skip
        assert {a.split("//")[1].rsplit(":", 1)[0] for a in seen.stdout.split()} == {
            head.address,
            other.address,
        }, seen.stderr
        runs = [
            ["kmeans", "--k", "4", "--max-iter", "4", "--execution", "allreduce"],
            ["gbdt", "--library", "lightgbm", "--rounds", "3"],
            ["sgd", "--strategy", "ring-allreduce", "--max-steps", "5"],
        ]
        for job in runs:
            where = ["--engine", "dask", "--address", address, "--workers", "2"]
            data = ["--rows", "8000", "--features", "8", "--out", str(tmp_path), "--json"]
            done = on(head, "run", *job, *where, *data)
            assert done.returncode == 0, done.stderr[-2000:]
            record = json.loads(done.stdout.strip().splitlines()[-1])
            assert record["status"] == "ok" and record["bytes_per_iteration"] > 0
    finally:
        on(head, "cluster", "stop", "dask")
        model.stop()
    assert _netns() <= before


TICK = """
import sys, dask
from distributed import Client
with Client(sys.argv[1]) as client:
    ticks = client.run(lambda: dask.config.get("distributed.admin.tick.interval"))
    print(*sorted(set(ticks.values())))
"""


def _timers_are_slowed(started) -> None:
    """The Dask workers on the machines tick D times less often than Dask's default."""
    model = machines.ScaleModel.load(started.machines)
    command, env = model.driver([sys.executable, "-c", TICK, started.address])
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == [f"{round(20 * model.factor)}ms"], done.stderr


def _cut_worker_fails_in_time(started) -> None:
    """A worker's link cut mid-run: the step fails within its deadline, in one line."""
    engine = started.engine
    model = machines.ScaleModel.load(started.machines)
    command, env = model.driver([sys.executable, "-c", PARTITIONED, engine])
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    seconds, error = done.stdout.split(" ", 1)
    # the deadline, then the engine's close (Spark's waits up to 10 s for a lost executor)
    assert float(seconds) < STEP_TIMEOUT + 20 and error.count("\n") == 1, done.stdout
    assert main(["cluster", "heal", engine, "m2"]) == 0
