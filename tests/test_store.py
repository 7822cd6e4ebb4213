"""The results store loses nothing: a failed write leaves whole records only, a killed
writer's temporary files go, and what is missing or corrupt is named while the rest loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from scaling.results import append_record, load, remove_orphans


def record(run_id: str, sweep_id: str = "s1") -> dict:
    return {"schema": 3, "sweep_id": sweep_id, "run_id": run_id, "status": "ok"}


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_missing_array_is_named_and_its_record_still_loads(tmp_path):
    kept = append_record(tmp_path, record("a"), {"centers": np.zeros((2, 2))})
    (tmp_path / "s1" / kept["artifacts"]["centers"]).unlink()
    loaded = load(tmp_path)
    assert [r["run_id"] for r in loaded.records] == ["a"]
    (problem,) = loaded.problems
    assert "run a saved a-centers.npy, which is missing" in problem


def test_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    folder = tmp_path / "s0"
    folder.mkdir()
    orphan = folder / f".a-centers.npy.{dead_pid()}.x1y2.tmp"
    mine = folder / f".b-centers.npy.{os.getpid()}.x1y2.tmp"  # a writer still at work
    orphan.write_bytes(b"half an array")
    mine.write_bytes(b"half an array")
    append_record(tmp_path, record("c"))  # any write to the store sweeps them up
    assert not orphan.exists() and mine.exists()
    assert remove_orphans(tmp_path) == []


DISK_FULL = """
import json, subprocess, sys
from pathlib import Path
store = Path(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(store)], check=True)
argv = [sys.executable, "-m", "scaling.cli", "sweep", "kmeans", "--engines", "local",
        "--workers", "1", "--rows", "2000", "--features", "4", "--k", "3", "--repeat", "60",
        "--no-baseline", "--out", str(store)]
done = subprocess.run(argv, capture_output=True, text=True)
from scaling.results import load
loaded = load(store)
print(json.dumps({
    "code": done.returncode, "err": done.stderr.strip().splitlines()[-1:],
    "records": len(loaded.records), "problems": loaded.problems,
    "lines": sum(len(f.read_text().splitlines()) for f in store.glob("*/records.jsonl")),
    "leftovers": [f.name for f in store.rglob(".*")],
    "unrecorded": sorted({f.name.split("-")[0] for f in store.glob("*/*-*")}
                         - {r["run_id"] for r in loaded.records}),
}))
"""


def test_a_full_disk_stops_the_sweep_in_one_line_and_keeps_the_earlier_records(tmp_path):
    """In a mount namespace of its own (as root), a 400 kB filesystem fills during a sweep."""
    store = tmp_path / "small"
    store.mkdir()
    script = tmp_path / "full.py"
    script.write_text(textwrap.dedent(DISK_FULL))
    done = subprocess.run(
        ["unshare", "--mount", sys.executable, str(script), str(store)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["code"] == 2
    (line,) = seen["err"]
    assert "No space left on device" in line and "Results written before are intact" in line
    # every record that was written is whole and loads; nothing half-written is left
    assert 0 < seen["records"] < 60 and seen["lines"] == seen["records"]
    assert seen["problems"] == [] and seen["leftovers"] == [] and seen["unrecorded"] == []
