"""Jobs submitted to a running cluster (``scaling submit``, ``scaling jobs``).

A job is one ``scaling run`` that runs detached from the terminal that submitted it, with its
own id, log and status, recorded in ``SCALING_HOME/jobs/ID.json``. On Ray it goes through the
cluster's own Job Submission API (its REST endpoints on the dashboard: the job runs on the
head node, and the dashboard lists it). Dask has no job service, and Spark's standalone master
runs a Python application's driver where ``spark-submit`` runs it (cluster deploy mode is for
JVM applications), so there the driver is a detached process of this host, started in a
session of its own under a small supervisor (``python -m scaling.run.submission ID``) that records
how it ended. Either way the run writes its records to the results store like any run, with
the job id in each record (``SCALING_JOB_ID``).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from scaling.errors import EngineError, UsageError
from scaling.results import atomic_write
from scaling.run.cluster import Cluster, Process, get_json, home
from scaling.run.daemons import end, start_time

FINAL = ("succeeded", "failed", "stopped")


@dataclass(kw_only=True)
class Submission:
    """A submitted job: what it runs, where, and how it stands."""

    id: str
    engine: str
    address: str
    argv: list[str]
    submitted_at: str
    status: str = "pending"  # running, then one of FINAL
    reason: str = ""
    dashboard: str = ""
    pid: int = 0  # the supervisor (detached drivers)
    started: float = 0.0
    ended_at: str = ""

    @property
    def path(self) -> Path:
        return jobs_dir() / f"{self.id}.json"

    @property
    def log(self) -> Path:
        return jobs_dir() / f"{self.id}.log"

    def save(self) -> None:
        atomic_write(self.path, json.dumps(asdict(self), indent=1).encode())

    @classmethod
    def load(cls, job_id: str) -> Submission:
        path = jobs_dir() / f"{job_id}.json"
        if not path.exists():
            raise UsageError(f"no job {job_id!r}; `scaling jobs` lists them")
        return cls(**json.loads(path.read_text()))


def jobs_dir() -> Path:
    return home() / "jobs"


def submit(cluster: Cluster, argv: list[str]) -> Submission:
    """Start ``scaling ARGV`` (a run) on ``cluster``, detached; returns at once."""
    now = datetime.now(UTC)
    job = Submission(
        id=f"job-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}",
        engine=cluster.engine,
        address=cluster.address,
        argv=argv,
        submitted_at=now.isoformat(timespec="seconds"),
        dashboard=next(iter(cluster.dashboards.values()), ""),
    )
    jobs_dir().mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "scaling.cli", *argv]
    if cluster.engine == "ray":
        _ray_request(
            job,
            "/api/jobs/",
            {
                "entrypoint": shlex.join(command),
                "submission_id": job.id,
                "runtime_env": {"env_vars": {"SCALING_JOB_ID": job.id}},
            },
        )
        job.status = "running"
        job.save()
        return job
    job.save()  # before the supervisor starts: it reads the job
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scaling.run.submission", job.id],
            stdin=subprocess.DEVNULL,
            stdout=null,
            stderr=null,
            start_new_session=True,  # the terminal closing does not end it
            env={**os.environ, "SCALING_JOB_ID": job.id},
        )
    job.pid, job.started = proc.pid, start_time(proc.pid)
    job.status = "running"
    job.save()
    return job


def refresh(job: Submission) -> Submission:
    """The job's status now (from Ray's job API, or the supervisor's record and process)."""
    if job.status in FINAL:
        return job
    if job.engine == "ray":
        try:
            info = _ray_request(job, f"/api/jobs/{job.id}")
        except EngineError as e:  # its driver ran there: it went with it
            return _end(
                job,
                "failed",
                f"the ray cluster at {job.address} went away (stopped, killed or unreachable: "
                f"{e}); start it again (`scaling cluster start ray`) and submit the job again "
                "(results already written are intact)",
            )
        status = info["status"].lower()
        if status in FINAL:
            return _end(job, status, "" if status == "succeeded" else info.get("message") or "")
        return job
    job = Submission.load(job.id)  # the supervisor may have ended it
    if job.status not in FINAL and not _supervisor(job).alive():
        return _end(job, "failed", "its driver process ended without a status")
    return job


def jobs() -> list[Submission]:
    """Every recorded job, oldest first, refreshed."""
    if not jobs_dir().exists():
        return []
    return [refresh(Submission.load(p.stem)) for p in sorted(jobs_dir().glob("*.json"))]


def logs(job: Submission) -> str:
    if job.engine == "ray":
        try:
            return _ray_request(job, f"/api/jobs/{job.id}/logs")["logs"]
        except EngineError:
            pass  # the cluster is gone: what the supervisor kept, if anything
    return job.log.read_text(errors="replace") if job.log.exists() else ""


def follow(job: Submission, out, poll: float = 0.5) -> Submission:
    """Write the job's log to ``out`` as it grows, until the job ends."""
    shown = 0
    while True:
        job = refresh(job)
        text = logs(job)
        out.write(text[shown:])
        out.flush()
        shown = len(text)
        if job.status in FINAL:
            return job
        time.sleep(poll)


def stop(job: Submission) -> Submission:
    """Stop a running job; what it already wrote to the results store stays."""
    job = refresh(job)
    if job.status in FINAL:
        return job
    if job.engine == "ray":
        _ray_request(job, f"/api/jobs/{job.id}/stop", {})
        wait(job, timeout=60)
        return _end(Submission.load(job.id), "stopped", "stopped by `scaling jobs stop`")
    job = _end(job, "stopped", "stopped by `scaling jobs stop`")  # first: the supervisor sees it
    supervisor = _supervisor(job)
    end([supervisor.pid] if supervisor.alive() else [], grace=10, group=True)
    return job


def wait(job: Submission, timeout: float | None = None, poll: float = 0.5) -> Submission:
    """Block until the job ends (or ``timeout`` seconds pass: then it is returned running)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while (job := refresh(job)).status not in FINAL:
        if deadline is not None and time.monotonic() > deadline:
            return job
        time.sleep(poll)
    return job


def _end(job: Submission, status: str, reason: str) -> Submission:
    job.status, job.reason = status, reason
    job.ended_at = datetime.now(UTC).isoformat(timespec="seconds")
    job.save()
    return job


def _supervisor(job: Submission) -> Process:
    """A detached job's supervisor, the leader of its driver's process group."""
    return Process(pid=job.pid, started=job.started, role="supervisor", log=str(job.log))


AGENT_WAIT = 60.0
"""Seconds a submission waits for the head's job agent: a cluster that has just started may
answer "No available agent to submit job, please try again later" for a few seconds."""


def _ray_request(job: Submission, path: str, body: dict | None = None) -> dict:
    """One call of Ray's Job Submission REST API on the cluster's dashboard (again, for up
    to :data:`AGENT_WAIT` s, while its job agent is not up yet)."""
    deadline = time.monotonic() + AGENT_WAIT
    while True:
        try:
            return get_json(job.dashboard + path, body, timeout=30)
        except urllib.error.HTTPError as e:
            said = e.read().decode()[:200]
            if "No available agent" in said and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise EngineError(f"Ray's job API said {e.code}: {said}") from e
        except OSError as e:
            raise EngineError(f"Ray's dashboard at {job.dashboard} does not answer ({e})") from e


def _supervise(job_id: str) -> int:
    """The detached driver's supervisor: run the job, then record how it ended (unless
    ``scaling jobs stop`` already did)."""
    job = Submission.load(job_id)
    with open(job.log, "ab") as log:
        code = subprocess.call(
            [sys.executable, "-m", "scaling.cli", *job.argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    job = Submission.load(job_id)
    if job.status not in FINAL:
        lines = job.log.read_text(errors="replace").strip().splitlines()
        reason = "" if code == 0 else (lines[-1] if lines else f"exit status {code}")
        _end(job, "succeeded" if code == 0 else "failed", reason)
    return code


if __name__ == "__main__":
    sys.exit(_supervise(sys.argv[1]))
