"""`--address` connects to a running cluster that cluster/start.sh started (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("engine", ["ray", "dask", "spark"])
def test_run_on_a_started_cluster(engine, tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "VENV": str(BIN.parent)}
    started = subprocess.run(
        [ROOT / "cluster/start.sh", engine, "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    try:
        options = started.stdout.strip().splitlines()[-1].split()
        done = subprocess.run(
            [
                BIN / "scaling",
                "run",
                "kmeans",
                *options,
                "--workers",
                "2",
                "--rows",
                "20000",
                "--k",
                "3",
                "--out",
                str(tmp_path),
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        record = json.loads(done.stdout.splitlines()[-1])
        assert record["engine"] == engine and record["address"] == options[-1]
        assert record["workers"] == 2 and record["quality"]["inertia"] > 0
    finally:
        subprocess.run(
            [ROOT / "cluster/stop.sh", engine], env=env, timeout=120, capture_output=True
        )
