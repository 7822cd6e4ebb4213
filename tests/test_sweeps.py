"""Sweeps, the results store, derived figures (COST included), plots and the HTML report."""

from __future__ import annotations

import json
import re
import time
import types

import pytest

from jobs import kmeans
from scaling.cli import main
from scaling.data import Blobs
from scaling.present.figures import curves, reading, winners
from scaling.present.plots import PLOTS, plot
from scaling.present.report import winner_rows, write_report
from scaling.results import SCHEMA, append_record, load, sweeps
from scaling.run.sweep import SweepPlan, per_iteration_by_difference, sweep, sweep_all

CONFIG = kmeans.KMeansConfig(k=3, max_iter=4, tol=0, init="random")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A tiny real sweep on the local engine and a real Dask cluster."""
    out = tmp_path_factory.mktemp("store")
    plan = SweepPlan(
        job=kmeans.JOB,
        config=CONFIG,
        engines=("local", "dask"),
        workers=(1, 2),
        sizes=(4_000, 8_000),
        features=3,
        repeat=2,
    )
    sweep_id, records = sweep(plan, out, progress=False)
    return out, sweep_id, records


def test_sweep_records_every_point_in_the_store(swept):
    out, sweep_id, records = swept
    stored = load(out).records
    assert stored == records
    assert {r["sweep_id"] for r in stored} == {sweep_id}
    runs = [r for r in stored if r["engine"] != "baseline"]
    assert len(runs) == 2 * 2 * 2 * 2  # sizes x engines x workers x repeats
    assert all(r["status"] == "ok" and r["schema"] == SCHEMA for r in runs)
    assert sorted((r["rows"], r["engine"], r["workers"]) for r in runs)[::2] == sorted(
        (s, e, w) for s in (4_000, 8_000) for e in ("local", "dask") for w in (1, 2)
    )
    baselines = [r for r in stored if r["engine"] == "baseline"]
    assert sorted(b["rows"] for b in baselines) == [4_000, 8_000]
    assert all(b["timings"]["per_iteration"] > 0 for b in baselines)
    assert all(r["host"]["cores"] and r["versions"]["numpy"] for r in runs)
    (summary,) = sweeps(stored)
    assert (summary["ok"], summary["failed"], summary["engines"]) == (16, 0, ["dask", "local"])


def test_baseline_time_divides_by_the_iterations_that_ran():
    """scikit-learn's Lloyd stops when no label changes; dividing by the iterations asked for
    gave a near-zero (once, in CI, zero) single-thread time for small blobs."""

    def fit(n):  # 20 ms of set-up, then 10 ms an iteration, converging after 2
        ran = min(n, 2)
        time.sleep(0.02 + 0.01 * ran)
        return types.SimpleNamespace(n_iter_=ran)

    assert 0.007 < per_iteration_by_difference(fit, 5, 1) < 0.02


def test_sweep_report_has_every_plot(swept, tmp_path):
    _, _, records = swept
    html_path = write_report(records, tmp_path / "report", title="tiny")
    html = html_path.read_text()
    for kind in PLOTS:
        png = (tmp_path / "report" / f"{kind}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
        assert f"<figure id='{kind}'><img alt='{kind}' src='data:image/png;base64," in html
    cs = curves(records)
    assert len(cs) == 4  # engines x sizes
    for c in cs:
        assert c.label in html and [p.workers for p in c.points] == [1, 2]
        assert all(p.repeats == 2 for p in c.points)


def test_weak_scaling_grows_the_rows_with_the_workers(tmp_path):
    plan = SweepPlan(
        job=kmeans.JOB,
        config=CONFIG,
        engines=("local",),
        workers=(1, 2),
        sizes=(3_000,),
        features=3,
        mode="weak",
    )
    _, records = sweep(plan, tmp_path, progress=False)
    assert [(r["workers"], r["rows"], r["mode"]) for r in records] == [
        (1, 3_000, "weak"),
        (2, 6_000, "weak"),
    ]  # and no baseline: COST is for strong scaling
    (curve,) = curves(records)
    assert curve.size == 3_000 and curve.mode == "weak"


def test_failed_runs_are_recorded_and_the_sweep_goes_on(tmp_path):
    # One row cannot be split into 2 partitions: the 2-worker run fails, the others do not.
    plan = SweepPlan(
        job=kmeans.JOB,
        config=kmeans.KMeansConfig(k=1, max_iter=2),
        engines=("local",),
        workers=(2, 1),
        sizes=(1,),
        data=Blobs(rows=1, features=2),
        baseline=False,
    )
    _, records = sweep(plan, tmp_path, progress=False)
    assert [(r["workers"], r["status"]) for r in records] == [(2, "failed"), (1, "ok")]
    assert "2 partitions for 1 rows" in records[0]["error"]
    assert load(tmp_path).records == records


def test_sweeps_run_together_share_each_cluster_and_see_it_after_its_last_run(tmp_path):
    """Two sweeps (the demo's two styles of one job) run together: each (engine, workers)
    cluster is started once for both, and ``between`` gets it, open, after its last run."""
    plans = [
        SweepPlan(job=kmeans.JOB, config=kmeans.KMeansConfig(k=2, max_iter=2, execution=e),
                  engines=("local",), workers=(1, 2), sizes=(2_000,), features=2,
                  baseline=False)
        for e in ("driver", "allreduce")
    ]  # fmt: skip
    seen = []
    done = sweep_all(plans, tmp_path, progress=False, between=lambda eng: seen.append(
        (eng.workers, eng._closed, len(load(tmp_path).records))))  # fmt: skip
    assert [[r["execution"] for r in records] for _, records in done] == [
        ["driver", "driver"],
        ["allreduce", "allreduce"],
    ]
    assert seen == [(1, False, 2), (2, False, 4)]  # after both sweeps' runs at each count
    startups = [r["timings"]["startup"] > 0 for _, records in done for r in records]
    assert startups == [True, True, False, False]  # the second sweep's runs reuse the cluster


def test_runs_share_a_cluster_and_a_failed_run_closes_it(tmp_path):
    """One Dask cluster for the runs of one worker count; the run that fails (one row in two
    partitions) closes it, and the next run starts a fresh one."""
    plan = SweepPlan(
        job=kmeans.JOB,
        config=kmeans.KMeansConfig(k=1, max_iter=2, init="random"),
        engines=("dask",),
        workers=(2,),
        sizes=(3_000, 1, 4_000, 5_000),
        features=2,
        baseline=False,
    )
    _, records = sweep(plan, tmp_path, progress=False)
    assert [r["status"] for r in records] == ["ok", "failed", "ok", "ok"]
    started = [r["timings"]["startup"] > 0 for r in records if r["status"] == "ok"]
    assert started == [True, True, False]
    # each run saw its own data and its own calls, not those of the run before it
    assert [r["rows"] for r in records] == [3_000, 1, 4_000, 5_000]
    assert all(len(r["timings"]["iterations"]) == 2 for r in records if r["status"] == "ok")


def _record(engine, workers, seconds, *, mode="strong", rows=1000, sweep_id="s1", **extra):
    """A made-up record, its throughput counting 3 units per row (as a job's own unit may)."""
    split = {"compute": 0.8 * seconds, "communication": 0.1 * seconds, "overhead": 0.1 * seconds}
    return {
        "schema": SCHEMA,
        "sweep_id": sweep_id,
        "run_id": f"{engine}{workers}{seconds}",
        "started_at": "2026-01-01T00:00:00+00:00",
        "mode": mode,
        "job": "kmeans",
        "engine": engine,
        "workers": workers,
        "rows": rows,
        "features": 4,
        "status": "ok",
        "timings": {"per_iteration": seconds, "iterations": []},
        "split": split,
        "throughput": {"value": 3 * rows / seconds, "unit": "things/s"},
        "headline": "inertia",
        "quality": {"inertia": 1.0},
        "sources": {"split": "measured: by hand", "bytes": "modelled: by hand"},
        **extra,
    }


KNOWN = [
    _record("baseline", 1, 0.7, baseline="single thread"),
    _record("ray", 1, 1.0),
    _record("ray", 2, 0.5),
    _record("ray", 2, 0.7),
    _record("ray", 4, 0.4),
    _record("dask", 1, 1.0),
    _record("dask", 2, 0.9),
    _record("dask", 1, 1.0, mode="weak", rows=500, sweep_id="s2"),
    _record("dask", 2, 1.25, mode="weak", rows=1000, sweep_id="s2"),
]


def test_figures_from_known_timings():
    by_label = {(c.engine, c.mode): c for c in curves(KNOWN)}
    ray = by_label[("ray", "strong")]
    assert [p.seconds for p in ray.points] == [1.0, 0.6, 0.4]  # median of the 2-worker repeats
    assert [p.speedup for p in ray.points] == pytest.approx([1.0, 1 / 0.6, 2.5])
    assert [p.efficiency for p in ray.points] == pytest.approx([1.0, 1 / 1.2, 0.625])
    # The records' own throughput (3 units per row here), never rows / seconds.
    assert [p.throughput for p in ray.points] == pytest.approx([3000, 3000 / 0.6, 7500])
    assert ray.unit == "things/s"
    assert ray.baseline == 0.7 and ray.cost == 2
    dask = by_label[("dask", "strong")]
    assert dask.cost is None  # 0.9 s never beats 0.7 s: "not reached"
    weak = by_label[("dask", "weak")]
    assert weak.size == 500 and weak.baseline is None
    assert [p.efficiency for p in weak.points] == pytest.approx([1.0, 0.8])
    assert "falls below 80% at 4 workers (62%)" in reading(ray)
    assert "COST against single thread: 2 workers" in reading(ray)
    assert (
        "at 4 workers compute takes 320.0 ms per iteration, where 800.0 ms at 1 divided by 4 "
        "would be 200.0 ms"
    ) in reading(ray)
    assert "COST against single thread: not reached" in reading(dask)


def test_a_reading_names_a_cost_the_first_count_did_not_pay():
    """A gang of one talks to no one: its curve's reading says so in words, never "an ideal
    0.0 ms"."""
    none = {"compute": 1.0, "communication": 0.0, "overhead": 0.0}
    some = {"compute": 0.5, "communication": 0.3, "overhead": 0.0}
    (curve,) = curves([_record("dask", 1, 1.0) | {"split": none},
                       _record("dask", 2, 0.8) | {"split": some}])  # fmt: skip
    said = "at 2 workers communication takes 300.0 ms per iteration, a cost that 1 worker did"
    assert f"{said} not pay." in reading(curve)
    assert " 0.0 ms" not in reading(curve) and "ideal" not in reading(curve)


def test_plots_draw_one_line_per_curve_and_the_ideal():
    cs = [c for c in curves(KNOWN) if c.mode == "strong"]
    ax = plot("speedup", cs).axes[0]
    drawn = {bars.get_label(): bars for bars in ax.containers}  # one error bar per curve
    assert set(drawn) == {c.label for c in cs}
    ray = next(c for c in cs if c.engine == "ray")
    assert list(drawn[ray.label].lines[0].get_ydata()) == pytest.approx([1.0, 1 / 0.6, 2.5])
    # The spread over repeats: Ray's two runs at 2 workers took 0.7 and 0.5 s.
    (spread,) = drawn[ray.label].lines[2]
    assert spread.get_segments()[1][:, 1] == pytest.approx([1 / 0.7, 1 / 0.5])
    ideal = next(line for line in ax.get_lines() if line.get_label() == "ideal")
    assert list(ideal.get_ydata()) == [1, 2, 4]
    bars = plot("split", cs).axes[0].patches
    assert len(bars) == 3 * sum(len(c.points) for c in cs)  # compute, comm., overhead


def test_corrupt_lines_and_old_records_are_named_and_the_rest_loads(tmp_path):
    good = append_record(tmp_path, _record("ray", 1, 1.0, run_id="a"))
    mid = {**good, "sweep_id": "mid"}
    (tmp_path / "corrupt.jsonl").write_text(f"{json.dumps(mid)}\n{{not json\n{json.dumps(mid)}")
    (tmp_path / "old.jsonl").write_text(json.dumps({**good, "schema": 1}) + "\n")
    (tmp_path / "cut.jsonl").write_text(json.dumps({**good, "sweep_id": "cut"}) + '\n{"sch')
    loaded = load(tmp_path)
    # the corrupt line costs that line, not its file's other records
    assert sorted(r["sweep_id"] for r in loaded.records) == ["cut", "mid", "mid", "s1"]
    assert len(loaded.problems) == 2
    assert any(re.search(r"corrupt\.jsonl:2 is not a JSON record", p) for p in loaded.problems)
    assert any(
        re.search(r"old\.jsonl:1 has record schema 1, this version reads schema 2 and 3", p)
        for p in loaded.problems
    )


def test_cli_sweep_results_and_compare(tmp_path, capsys):
    store = tmp_path / "store"
    for rows in ("3000", "6000"):
        code = main(
            [
                "sweep",
                "kmeans",
                "--engines",
                "local",
                "--workers",
                "1,2",
                "--rows",
                rows,
                "--features",
                "3",
                "--k",
                "3",
                "--max-iter",
                "3",
                "--out",
                str(store),
            ]
        )
        assert code == 0
    out = capsys.readouterr().out
    assert out.count("report:") == 2 and "speedup" in out
    assert main(["results", str(store)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 3 and sorted(line.split()[5] for line in listing[1:]) == [
        "3,000",
        "6,000",
    ]
    ids = [line.split()[0] for line in listing[1:]]
    assert (
        main(
            [
                "compare",
                *(str(store / i) for i in ids),
                "--report",
                str(tmp_path / "cmp"),
            ]
        )
        == 0
    )
    html = (tmp_path / "cmp" / "report.html").read_text()
    assert "3,000 rows" in html and "6,000 rows" in html  # labels say what differs


def test_compare_of_nothing_is_a_clear_error(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no sweep found" in err and "scaling: error: no records found" in err


def test_curves_of_decompositions_are_named_by_their_options_and_raced_per_cell():
    def run(strategy, workers, seconds):
        return _record(
            "dask", workers, seconds, sweep_id=strategy, config={"strategy": strategy, "k": 4}
        )

    records = [run("ring", 1, 1.0), run("ring", 2, 0.6), run("local", 1, 0.9), run("local", 2, 0.7)]
    cs = curves(records)
    assert sorted(c.label for c in cs) == ["dask strategy=local", "dask strategy=ring"]
    cells = winners(cs)
    assert [(w["cell"], w["measured"], w["predicted"]) for w in cells] == [
        ("kmeans on dask, 1,000 x 4, 1 worker", "dask strategy=local", None),
        ("kmeans on dask, 1,000 x 4, 2 workers", "dask strategy=ring", None),
    ]
    for c in cs:  # a model that thinks the opposite at 2 workers
        for p in c.points:
            p.predicted = p.seconds if p.workers == 1 else 1.4 - p.seconds
    assert [w["predicted"] for w in winners(cs)] == ["dask strategy=local"] * 2
    rows = winner_rows(cs)
    assert rows[2][-2:] == ("~dask strategy=local (next +14%)", "no")
    for c in cs:  # intervals that overlap: the model cannot tell the two apart, and says so
        for p in c.points:
            p.predicted_spread = 0.06
    tied = winners(cs)[1]
    assert tied["tied"] and tied["predicted"] == "dask strategy=local or dask strategy=ring"
    assert winner_rows(cs)[2][-1] == "cannot tell"


def test_results_of_a_path_without_a_store_is_a_clear_error(tmp_path, capsys):
    assert main(["results", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no sweep found" in capsys.readouterr().err
