"""Workers that die or freeze, on real clusters of every engine: a lost worker is replaced, its
partitions are re-read from their specs and the step runs again, giving the undisturbed
result; past ``--max-failures`` the run fails in one line; a frozen worker fails the step
within its deadline. Each engine runs in a process of its own, as the drill kills workers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jobs import kmeans
from scaling.runner import run_job

KMEANS = ["kmeans", "--workers", "2", "--rows", "20000", "--k", "4", "--max-iter", "6"]
KMEANS += ["--tol", "0"]

FAIL_OR_FREEZE = """
import os, signal, sys, time
from scaling import testing
from scaling.data import Blobs
from scaling.engines import make_engine
from scaling.engines.worker import process_id
from scaling.errors import LostWorker, StepTimeout
if __name__ == "__main__":
    with make_engine(sys.argv[1], 2, step_timeout=5, max_failures=0) as engine:
        ds = engine.load(Blobs(rows=1000, features=2))
        try:
            engine.map(ds, testing.die)
        except LostWorker as e:
            print(f"@@died {e}", flush=True)  # one write; the frameworks' logs share stdout
        engine.max_failures = 1  # the next load replaces the dead worker
        ds = engine.load(Blobs(rows=1000, features=2))
        pid = engine.map(ds, process_id)[0]
        os.kill(pid, signal.SIGSTOP)
        t0 = time.perf_counter()
        try:
            engine.map_reduce(ds, testing.scaled_sum, testing.add, 1.0)
        except StepTimeout as e:
            print(f"@@froze {time.perf_counter() - t0:.2f} {e}", flush=True)
        finally:
            os.kill(pid, signal.SIGKILL)
"""


@pytest.mark.parametrize("name", ["ray", "dask", "spark"])
def test_past_max_failures_a_run_fails_and_a_frozen_worker_within_its_deadline(tmp_path, name):
    script = tmp_path / "fail.py"
    script.write_text(FAIL_OR_FREEZE)
    done = subprocess.run(
        [sys.executable, str(script), name], capture_output=True, text=True, timeout=300
    )
    said = dict(ln.split("@@", 1)[1].split(" ", 1) for ln in done.stdout.splitlines() if "@@" in ln)
    assert f"a {name} worker died during map" in said["died"]
    assert said["died"].endswith("(--max-failures 0: no recovery)")
    seconds, message = said["froze"].split(" ", 1)
    assert 5 <= float(seconds) < 8 and "within 5 s during map_reduce" in message


@pytest.mark.parametrize("name", ["ray", "dask", "spark"])
def test_the_drill_kills_a_worker_and_the_run_recovers_the_undisturbed_result(tmp_path, name):
    argv = ["run", *KMEANS, "--engine", name, "--kill-worker-at", "2", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "scaling.cli", *argv, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (record,) = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    (failure,) = record["failures"]
    assert failure["op"] == "map_reduce" and failure["partitions"] == [0]
    if name == "spark":  # Spark runs the task again itself, on a new Python worker
        assert "spark ran it again and it re-read partitions [0]" in failure["how"]
    else:  # the engine replaced the worker, re-read its partition, ran the step again
        assert failure["workers"] == [0] and failure["detected"] < 5 and failure["recovery"] > 0
    config = kmeans.KMeansConfig(k=4, max_iter=6, tol=0.0)
    undisturbed = run_job(
        kmeans.JOB, "local", 2, kmeans.JOB.synthetic(20_000, 16, 0, config), config
    )
    assert record["quality"] == undisturbed.record["quality"]
    assert done.stderr.count("\n") <= 2  # nothing a framework logs (a progress line at most)
