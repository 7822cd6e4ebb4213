"""`scaling cluster`, `scaling submit` and `scaling jobs` on real local clusters of each engine:
start, submit from a process that exits, list, logs, stop, wait, records, stop the cluster
and check by process ids and sockets that nothing it started is left."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest

from jobs import kmeans
from scaling.cli import main
from scaling.engines.net import is_loopback
from scaling.present.report import write_report
from scaling.results import load
from scaling.run import cluster, submission
from scaling.run.runner import run_job
from scaling.run.spec import RunSpec

SHORT = ["kmeans", "--rows", "20000", "--k", "4", "--max-iter", "5", "--tol", "0"]
# a driver loop of many steps: it runs until stopped, and stopping its driver stops it
LONG = ["sgd", "--strategy", "driver-allreduce", "--max-steps", "1000000", "--rows", "4000",
        "--hidden", "8", "--batch-size", "64", "--eval-every", "1000000"]  # fmt: skip


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_HOME", str(tmp_path / "home"))
    return tmp_path


def submit(*args: str, cwd: Path | None = None) -> str:
    """`scaling submit` from a process of its own, which exits: the job must outlive it."""
    done = subprocess.run(
        [sys.executable, "-m", "scaling.cli", "submit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def everything(c: cluster.Cluster) -> list[psutil.Process]:
    """The cluster's daemons and every process they spawned, now."""
    procs = []
    for p in c.processes:
        if p.alive():
            leader = psutil.Process(p.pid)
            procs += [leader, *leader.children(recursive=True)]
    return procs


def working(c: cluster.Cluster, cpu: float = 3.0, timeout: float = 120.0) -> None:
    """Until the cluster's processes have spent ``cpu`` more CPU seconds: a job runs on it."""

    def spent() -> float:
        total = 0.0
        for p in everything(c):
            with contextlib.suppress(psutil.Error):
                total += sum(p.cpu_times()[:2])  # user and system
        return total

    before, deadline = spent(), time.monotonic() + timeout
    while spent() - before < cpu:
        assert time.monotonic() < deadline, f"no job kept {c.engine}'s workers busy"
        time.sleep(0.5)


def _log(job: submission.Submission, c: cluster.Cluster) -> str:
    """Why a submitted job did not succeed: its reason, the end of its log and of the log of
    every daemon of ``c`` that is no longer running."""
    logs = [(job.id, job.log)] + [(p.role, Path(p.log)) for p in c.processes if not p.alive()]
    tails = [f"--- {name}:\n{path.read_text(errors='replace')[-3000:]}" for name, path in logs
             if path.is_file()]  # fmt: skip
    return "\n".join([job.reason, *tails])


def pending(c: cluster.Cluster) -> set[str]:
    """The Ray actors on ``c`` that wait for resources (its dashboard's state API)."""
    query = "filter_keys=state&filter_predicates=%3D&filter_values=PENDING_CREATION"
    url = f"{c.dashboards['Ray dashboard']}/api/v0/actors?{query}"
    return {a["actor_id"] for a in cluster.get_json(url, timeout=10)["data"]["result"]["result"]}


def waits(c: cluster.Cluster, before: set[str], timeout: float = 120.0) -> None:
    """Until an actor not in ``before`` waits for resources on ``c``: one a run that failed
    earlier left is listed as waiting until Ray sees its driver gone."""
    deadline = time.monotonic() + timeout
    while not pending(c) - before:
        assert time.monotonic() < deadline, "no actor waited for the CPUs another run holds"
        time.sleep(0.5)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((cluster.HOST, port)) == 0


@pytest.mark.parametrize("engine", ["ray", "dask", "spark"])
def test_start_submit_watch_stop(engine, home, capsys):
    if engine == "dask":  # one worker, then a second set that joins it: the multi-host path
        assert main(["cluster", "start", "dask", "--workers", "1"]) == 0
        address = cluster.running("dask").address
        assert main(["cluster", "start", "dask", "--workers", "1", "--join", address]) == 0
    else:
        assert main(["cluster", "start", engine, "--workers", "2"]) == 0, capsys.readouterr().err
    c = cluster.running(engine)
    try:
        assert c.live_workers() == 2 and c.workers == 2
        pids = {p.pid for p in everything(c)}
        sockets = [s for s in psutil.net_connections("inet") if s.pid in pids]
        bound = {s.laddr.ip for s in sockets if s.status == psutil.CONN_LISTEN}
        assert bound and all(map(is_loopback, bound)), bound  # every daemon on loopback
        for url in c.dashboards.values():  # on, and on loopback
            assert url.startswith(f"http://{cluster.HOST}:")
            assert urllib.request.urlopen(url, timeout=10).status == 200

        store = home / "results"
        source = kmeans.JOB.synthetic(20_000, 16, 0, kmeans.KMeansConfig(k=4))
        np.save(home / "centres.npy", source.read(0, 4)[0])
        config = kmeans.KMeansConfig(k=4, max_iter=5, tol=0, init=str(home / "centres.npy"))
        # file options relative to where it is submitted from: the job runs elsewhere
        relative = ["--init", "centres.npy", "--out", "results"]
        short = submit(*SHORT, *relative, "--cluster", engine, cwd=home)
        ended = submission.wait(submission.Submission.load(short), timeout=300)
        assert ended.status == "succeeded", _log(ended, c)
        capsys.readouterr()
        assert main(["jobs", "logs", short]) == 0
        assert "records:" in capsys.readouterr().out
        # a second job, stopped: through Ray's API, or by ending a detached driver
        long = submit(*LONG, "--cluster", engine, "--out", str(store))
        assert main(["jobs"]) == 0
        listed = capsys.readouterr().out
        assert re.search(rf"{short}\s+{engine}\s+succeeded", listed)
        assert re.search(rf"{long}\s+{engine}\s+running", listed)
        assert main(["jobs", "stop", long]) == 0
        assert main(["jobs", "status", long]) == 0
        said = capsys.readouterr().out.splitlines()
        assert said == [f"{long}: stopped (stopped by `scaling jobs stop`)"] * 2

        # the submitted run's record: in the store, with its job id, equal to a local run
        (record,) = load(store).records
        assert record["job_id"] == short and record["status"] == "ok"
        assert (record["engine"], record["workers"], record["address"]) == (
            engine,
            2,
            c.address,
        )
        assert record["dashboards"].items() >= c.dashboards.items()
        if engine == "spark":  # and the application's own UI, on loopback
            assert record["dashboards"]["Spark application"].startswith("http://127.0.0.1:")
        report = write_report([record], home / "report").read_text()
        assert all(url in report for url in c.dashboards.values())  # while the cluster lives
        local = run_job(
            RunSpec(job=kmeans.JOB, engine="local", workers=2, source=source, config=config)
        ).record
        assert record["quality"]["inertia"] == pytest.approx(local["quality"]["inertia"], 1e-9)

        # asking for more workers than it has fails at once, with the number it has
        assert main(["run", *SHORT, "--cluster", engine, "--workers", "3"]) == 2
        assert "has 2 workers" in capsys.readouterr().err
        # and so does one started by other means, unknown here (a driver of its own: this
        # process may hold the suite's Ray or SparkContext)
        argv = ["run", *SHORT, "--engine", engine, "--address", c.address, "--workers", "3"]
        elsewhere = {**os.environ, "SCALING_HOME": str(home / "elsewhere")}
        done = subprocess.run(
            [sys.executable, "-m", "scaling.cli", *argv, "--out", str(home / "x")],
            capture_output=True, text=True, timeout=120, env=elsewhere,
        )  # fmt: skip
        assert done.returncode == 2 and re.search(r"(has|gave) 2 .*, 3 .*asked", done.stderr)

        if engine == "dask":  # a sweep goes the same way (the same code on every engine)
            swept = home / "swept"
            job = submit("sweep", *SHORT, "--no-baseline", "--cluster", engine, "--out", str(swept))
            ended = submission.wait(submission.Submission.load(job), timeout=300)
            assert ended.status == "succeeded", _log(ended, c)
            records = load(swept).records
            assert [(r["workers"], r["job_id"], r["status"]) for r in records] == [
                (1, job, "ok"),
                (2, job, "ok"),
            ]
            assert list(swept.glob("*/report.html"))
        # and a job whose cluster goes away (stopped below) ends in one line that says so: a
        # submitted one (Ray's drivers run on the cluster and go with it: one run from here)
        if engine == "ray":
            argv = [sys.executable, "-m", "scaling.cli", "run", *LONG, "--cluster", engine]
            doomed = subprocess.Popen(
                [*argv, "--out", str(home / "doomed")], stderr=subprocess.PIPE, text=True
            )
        else:
            doomed = submit(*LONG, "--cluster", engine, "--out", str(home / "doomed"))
            json.loads((submission.jobs_dir() / f"{doomed}.json").read_text())  # at once
        working(c)
        if engine == "ray":  # and one still starting: its workers wait for the CPUs it holds
            before = pending(c)
            waiting = subprocess.Popen(
                [*argv, "--out", str(home / "waiting")], stderr=subprocess.PIPE, text=True
            )
            waits(c, before)
    finally:
        procs = everything(c)
        assert main(["cluster", "stop", engine]) == 0
    assert procs and not [p for p in procs if p.is_running() and p.status() != "zombie"]
    assert not [port for port in c.ports if listening(port)]
    assert cluster.running(engine) is None
    if engine == "ray":  # within Ray's own 60 s, after which its GCS client ends the process
        reasons = []
        for driver in (doomed, waiting):
            said = driver.communicate(timeout=50)[1]
            assert driver.returncode == 2 and "Traceback" not in said, said[-3000:]
            reasons.append(said.strip().splitlines()[-1])
        assert "during start" in reasons[1]
    else:
        ended = submission.wait(submission.Submission.load(doomed), timeout=60)
        assert ended.status == "failed", ended.reason
        capsys.readouterr()
        assert main(["jobs", "logs", doomed]) == 0
        assert "Traceback" not in capsys.readouterr().out  # in the job's log
        reasons = [ended.reason]
    for reason in reasons:  # what happened, and what to do
        assert reason.startswith("scaling: error:") and "went away" in reason, reason
        assert f"`scaling cluster start {engine}`" in reason


def test_cluster_commands_refuse_what_they_cannot_do(home, capsys):
    assert main(["submit", *SHORT, "--cluster", "dask"]) == 2
    assert "no dask cluster started here is running" in capsys.readouterr().err
    assert main(["cluster", "start", "mesos"]) == 2
    assert main(["jobs", "status", "job-nope"]) == 2
    assert "no job 'job-nope'" in capsys.readouterr().err
    assert main(["cluster", "stop", "dask"]) == 0
    assert "nothing to stop" in capsys.readouterr().out
    assert os.environ["SCALING_HOME"].startswith(str(home))
