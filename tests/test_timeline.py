"""Per-task timelines on every engine: on one clock, valid Chrome trace-event JSON, and their
bars add up to the split the record reports."""

from __future__ import annotations

import json

import pytest

from jobs import kmeans, sgd
from scaling.cli import main
from scaling.data import Blobs, Classification
from scaling.measure import timeline
from scaling.results import load

TOLERANCE = 0.05
"""Bars against the recorded split, as a fraction of the iteration's wall time: the two are
timed apart (wall-clock stamps on the workers, perf counters inside the tasks)."""


def _check_split(trace, name: str) -> None:
    spans = [s for s in trace.spans if s.name == name]
    assert spans
    for span in spans:
        recorded = span.summary()
        drawn = timeline.split_of(timeline.iteration(trace, span))
        for part in ("compute", "communication", "overhead"):
            assert drawn[part] == pytest.approx(recorded[part], abs=TOLERANCE * span.wall), part


def test_driver_loop_iterations_add_up_to_their_split(engine, fresh_trace):
    ds = engine.load(Blobs(rows=6_000, features=4, centers=3), partitions=3)
    kmeans.fit(engine, ds, kmeans.KMeansConfig(k=3, max_iter=3, tol=0, init="random"))
    engine.release(ds)
    _check_split(fresh_trace, kmeans.ITERATION)
    _check_chrome_trace(fresh_trace)
    one = timeline.iteration(fresh_trace, fresh_trace.spans[-2])  # the last Lloyd iteration
    workers = {b["lane"] for b in one["bars"] if b["name"] == "_partial_sums"}
    assert len(workers) == (1 if engine.name == "local" else engine.workers)
    for bar in one["bars"]:  # every task inside the iteration, on the driver's clock
        assert -1e-3 <= bar["start"] <= bar["end"] <= one["wall"] + 1e-3


def _check_chrome_trace(trace_) -> None:
    """The run as Chrome trace-event JSON: valid, a lane per process, tasks on the workers."""
    trace = json.loads(json.dumps(timeline.chrome_trace(trace_, kmeans.ITERATION)))
    events = trace["traceEvents"]
    names = {e["args"]["name"] for e in events if e["ph"] == "M"}
    assert "driver" in names and len(names) >= 2
    complete = [e for e in events if e["ph"] == "X"]
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in complete)
    assert {e["name"] for e in complete} >= {"map_reduce", "_partial_sums", "lloyd 0"}
    tasks = {e["pid"] for e in complete if e["name"] == "_partial_sums"}
    assert 0 not in tasks  # tasks are on the workers' lanes, not the driver's


def test_gang_iterations_add_up_to_their_split(engine, fresh_trace):
    ds = engine.load(Classification(rows=3_000, features=4), partitions=engine.workers)
    sgd.JOB.fit(engine, ds, sgd.SGDConfig(hidden="8", batch_size=64, max_steps=5))
    engine.release(ds)
    _check_split(fresh_trace, sgd.ITERATION)
    lanes = {b["lane"] for b in timeline.iteration(fresh_trace, fresh_trace.spans[-1])["bars"]}
    assert len(lanes) == engine.workers  # one lane per member


def test_cli_timeline(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["run", "kmeans", "--rows", "2000", "--features", "2", "--k", "2",
                 "--max-iter", "2", "--out", str(store)]) == 0  # fmt: skip
    (record,) = load(store).records
    out = tmp_path / "t.json"
    assert main(["timeline", record["run_id"], "--store", str(store), "--out", str(out)]) == 0
    assert "open it in https://ui.perfetto.dev" in capsys.readouterr().out
    assert json.loads(out.read_text())["traceEvents"]
    assert main(["timeline", "nope", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "no run 'nope'" in err and err.count("\n") == 1
