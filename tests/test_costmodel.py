"""The cost model: calibration recovers what an engine costs; predictions meet measurements."""

from __future__ import annotations

import json
import re
import statistics
import time
from dataclasses import replace

import numpy as np
import pytest

from jobs import get_job
from jobs.kmeans.config import KMeansConfig
from scaling.cli import main
from scaling.data import Blobs
from scaling.engines.local import LocalEngine
from scaling.errors import UsageError
from scaling.measure.host import host_facts
from scaling.measure.trace import payload_bytes
from scaling.model import calibration, costmodel
from scaling.model.patterns import Link, busiest_bytes
from scaling.run import calibrate, sample
from scaling.run.runner import run_job
from scaling.run.spec import RunSpec

A, B = 0.020, 0.010  # the synthetic engine's empty call: A + B p seconds
BETA_UP, BETA_DOWN = 20e-9, 10e-9  # seconds per byte, workers -> driver and driver -> workers
SIZES = (0, 1 << 17, 1 << 19, 1 << 20)


class Synthetic(LocalEngine):
    """The local engine, paying known costs: an empty call ``A + B p``, bytes up the combine
    tree at ``BETA_UP`` and a broadcast at ``BETA_DOWN`` to each worker."""

    name = "synthetic"

    def _map(self, ds, fn, args):
        time.sleep(A + B * self.workers)
        return super()._map(ds, fn, args)

    def _map_reduce(self, ds, fn, combine, args):
        out = super()._map_reduce(ds, fn, combine, args)
        up = busiest_bytes("tree", self.workers, payload_bytes(out.value))
        time.sleep(A + B * self.workers + up * BETA_UP)
        return out

    def _broadcast(self, value):
        time.sleep(busiest_bytes("scatter", self.workers, payload_bytes(value)) * BETA_DOWN)
        return value


def test_calibration_recovers_a_synthetic_engine(monkeypatch):
    monkeypatch.setattr(calibrate, "SIZES", SIZES)
    cal = calibrate.calibrate(
        "synthetic", [1, 2, 3], make=lambda name, p: Synthetic(workers=p), repeat=5
    )
    # Its known costs come on top of the local engine's own empty call (0.03-0.6 ms, growing
    # with its partitions, which it runs one after another; more on a loaded machine), measured
    # here the same way and fitted the same way. Measured apart, the two move by up to 0.6 ms
    # against each other on this host (1 ms in the intercept): 5% of the known costs, 7.5% allowed.
    own = []
    for p in (1, 2, 3):
        with LocalEngine(workers=p) as plain:
            ds = plain.load(Blobs(rows=256 * p, features=4, seed=0), partitions=p)
            own.append(statistics.median(calibrate.empty_calls(plain, ds, 5)))
    own_b, own_a = np.polyfit([1, 2, 3], own, 1)
    assert cal.call[0] == pytest.approx(A + own_a, rel=0.075)
    assert cal.call[1] == pytest.approx(B + own_b, rel=0.075)
    assert cal.up.beta == pytest.approx(BETA_UP, rel=0.05)
    assert cal.down.beta == pytest.approx(BETA_DOWN, rel=0.05)
    # The roofline is this machine's, measured: a core does between 0.5 and 500 Gflop/s.
    assert 5e8 < cal.gemm < 5e11 and 1e8 < cal.bandwidth < 1e12
    # The straggle as measured at each count, the widest's beyond; between two counts, linear
    # in log2 p.
    measured = [max(cal.points[str(p)]["straggle"], 0.0) for p in (2, 3)]
    assert [cal.straggle_at(p) for p in (1, 2, 3, 64)] == [0.0, *measured, cal.straggle]
    spread = replace(cal, straggles={"1": 0.0, "2": 0.1, "8": 0.3})
    assert spread.straggle_at(4) == pytest.approx(0.2) and spread.straggle_at(16) == 0.3
    # Worker to worker, each transport is also fitted at each count alone and read there; at
    # each, it prices the largest message timed within 30% of its time (a line through the
    # origin over four sizes, after the latency of the smallest).
    assert set(cal.peers) == {"2", "3"} and cal.link("allreduce", 3) == cal.peers["3"]
    for name, by in cal.library_links.items():
        assert set(by) == {"2", "3"} and cal.library(name, 3) == by["3"]
        for p in ("2", "3"):
            timed = {int(m): t for m, t in cal.points[p]["libraries"][name].items()}
            hops, sends = calibration._moved(name, max(timed), int(p))
            assert by[p].time(hops, sends) == pytest.approx(timed[max(timed)], rel=0.3)
    # Kept and read back whole; from another host it is not reused.
    assert calibration.Calibration.from_json(cal.to_json()) == cal
    # Measured on a scale model slowed by 2, the same points are a cluster twice as fast.
    fast = calibration.fit("synthetic", "", list(cal.points.values()), dilation=2)
    assert fast.call == pytest.approx((cal.call[0] / 2, cal.call[1] / 2))
    assert fast.up.beta == pytest.approx(BETA_UP / 2, rel=0.05)
    assert fast.gemm == pytest.approx(2 * cal.gemm) and fast.straggle == cal.straggle
    assert fast.points == cal.points and fast.dilation == 2
    # A call measured cheaper at more workers (noise on a busy host) is priced flat, at the
    # calls' mean: within the calls measured at every count, not above them all.
    falling = [{**pt, "empty_call": 0.02 / pt["workers"]} for pt in cal.points.values()]
    flat = calibration.fit("synthetic", "", falling)
    assert flat.call == (pytest.approx(statistics.mean(0.02 / p for p in (1, 2, 3))), 0.0)


def test_calibration_is_reused_only_on_its_host(tmp_path):
    cal = calibration.Calibration(
        engine="dask",
        host=host_facts(),
        versions={},
        measured_at="now",
        workers=[1],
        call=(0.01, 0.0),
        gang_iteration=1e-4,
        up=Link(0, 1e-9),
        down=Link(0, 1e-9),
        peer=Link(1e-5, 1e-9),
        gemm=1e10,
        bandwidth=1e10,
        straggle=0.0,
    )
    calibration.save(tmp_path, cal)
    assert calibration.load(tmp_path, "dask") == cal
    moved = replace(cal, host={**cal.host, "hostname": "elsewhere"})
    calibration.save(tmp_path, moved)
    assert calibration.load(tmp_path, "dask") is None
    assert calibration.load(tmp_path, "ray") is None


def test_local_engine_is_not_predicted():
    with pytest.raises(UsageError, match="one after another"):
        calibrate.calibrate("local", [1])


@pytest.fixture(scope="module")
def dask_calibration():
    return calibrate.calibrate("dask", [1, 2], repeat=5)


def test_model_bytes_are_what_a_real_run_moved(dask_calibration):
    """The all-reduce k-means iteration: the bytes the model prices (each worker's sends, from
    the steps) against what the kernel counted on the mesh's sockets in a real run."""
    job = get_job("kmeans")
    config = KMeansConfig(k=8, max_iter=4, tol=0.0, init="random", execution="allreduce")
    run = run_job(
        RunSpec(
            job=job,
            engine="dask",
            workers=2,
            source=job.synthetic(20_000, 8, 0, config),
            config=config,
        )
    )
    steps = job.explain(20_000, 8, 2, config)
    modelled = 2 * 2 * sum(s.sends for s in steps if s.pattern)  # sent and received, by two
    assert run.record["sources"]["bytes"].startswith("measured")
    assert run.record["bytes_per_iteration"] == pytest.approx(modelled, rel=0.05)


def test_prediction_meets_the_measured_times_it_was_fitted_on(dask_calibration):
    """Compute is fitted on measured 1-worker runs at two shapes: a fixed cost per iteration
    and a factor on the roofline, which meets both, or (where the line's fixed cost comes out
    negative: k-means has almost none, so noise decides) the factor alone, the median of the
    two shapes' ratios, which misses each by at most half of how far the two measured ratios
    disagree. That disagreement is measured here, not assumed: on a loaded machine it was 26%
    once. The rest of the time (the engine's call, the bytes) comes from the calibration
    alone, so it gets a tolerance of its own."""
    job = get_job("kmeans")
    config = KMeansConfig(k=16, max_iter=6, tol=0.0, init="random")
    shapes = [(400_000, 16), (1_600_000, 16)]  # both past the caches
    runs = [
        run_job(
            RunSpec(
                job=job,
                engine="dask",
                workers=1,
                source=job.synthetic(n, d, 0, config),
                config=config,
            )
        )
        for n, d in shapes
    ]
    records = [r.record for r in runs]
    fitted = costmodel.correction(job, "dask", config, records, dask_calibration)
    assert "2 measured 1-worker runs" in fitted.where[0]
    roofs = [costmodel.roofline_seconds(job, n, d, config, dask_calibration) for n, d in shapes]
    ratios = sorted(r["split"]["compute"] / roof for r, roof in zip(records, roofs, strict=True))
    disagreement = ratios[1] / ratios[0] - 1
    for (n, d), record in zip(shapes, records, strict=True):
        (terms,) = costmodel.predict(
            lambda p, n=n, d=d: job.explain(n, d, p, config), [1], dask_calibration, fitted
        )
        measured = record["split"]["compute"]
        assert terms.compute == pytest.approx(measured, rel=disagreement / 2 + 1e-9)
        wall = record["timings"]["per_iteration"]
        rest = terms.seconds - terms.compute
        assert rest == pytest.approx(wall - measured, abs=0.35 * wall)
    one = costmodel.correction(job, "dask", config, records[:1], dask_calibration)
    assert "median of 1 measured 1-worker run" in one.where[0] and one.fixed == 0


def test_library_transports_are_timed_by_size_or_fitted_on_a_wider_run(dask_calibration):
    """XGBoost's and gloo's all-reduces and LightGBM's rounds are timed by message size in
    the calibration, and their steps priced at those links. A calibration without a library's
    link (one made before it was timed) gets a factor from a 2-worker run, after which the
    model meets that run's time (and a 1-worker run's compute) exactly."""
    assert set(dask_calibration.libraries) == {"xgboost", "gloo", "lightgbm"}
    assert all(link.alpha > 0 and link.beta > 0 for link in dask_calibration.libraries.values())
    job = get_job("gbdt")
    for library in ("xgboost", "lightgbm"):
        steps = job.explain(20_000, 16, 2, job.config(library=library))
        own, untimed = costmodel.communication(steps, 2, dask_calibration)
        assert own > 0 and untimed == 0
    older = replace(
        dask_calibration,
        libraries={k: v for k, v in dask_calibration.libraries.items() if k != "lightgbm"},
    )
    config = job.config(rounds=4, library="lightgbm")
    source = job.synthetic(20_000, 16, 0, config)
    records = [
        run_job(RunSpec(job=job, engine="dask", workers=p, source=source, config=config)).record
        for p in (1, 2)
    ]
    fitted = costmodel.correction(job, "dask", config, records, older)
    assert "library's own transport" in fitted.where[1] and fitted.transport > 0
    one, two = costmodel.predict(
        lambda p: job.explain(20_000, 16, p, config), [1, 2], older, fitted
    )
    assert one.compute == pytest.approx(records[0]["split"]["compute"], rel=1e-6)
    assert two.seconds == pytest.approx(records[1]["timings"]["per_iteration"], rel=1e-6)


def test_predict_command(dask_calibration, tmp_path, capsys):
    calibration.save(tmp_path, dask_calibration)
    argv = ["predict", "kmeans", "--engine", "dask", "--store", str(tmp_path)]
    assert main([*argv, "--workers", "1,2,4,64", "--json"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    # compute from the job's iteration timed on samples of the shape, once per host and shape
    assert "timing kmeans's iteration on 7 samples of 15,625 to 1,000,000 rows" in err
    kept = (tmp_path / "calibration" / "samples.json").read_text()
    assert [r["workers"] for r in rows] == [1, 2, 4, 64]
    assert all(r["source"] == "modelled" and r["seconds_per_iteration"] > 0 for r in rows)
    assert rows[0]["speedup"] == pytest.approx(1.0)
    # each time with the spread of what it rests on; beyond the calibrated counts, said so
    assert all(lo <= r["seconds_per_iteration"] <= hi for r in rows for lo, hi in [r["interval"]])
    assert [r["extrapolated"] for r in rows] == [False, False, True, True]
    terms = rows[-1]["terms"]
    assert sum(terms.values()) == pytest.approx(rows[-1]["seconds_per_iteration"])
    # Compute shrinks as 1/p, the engine's call does not: at 64 workers it dominates.
    assert rows[-1]["dominant"] == "overhead" and rows[-1]["efficiency"] < 0.5
    png = tmp_path / "curve.png"
    assert main([*argv, "--network", "10gbe", "--png", str(png)]) == 0
    out, err = capsys.readouterr()
    assert "(modelled, not measured)" in out and "10gbe" in out and "fastest at" in out
    assert "interval: give or take" in out and "\n4 *  " in out
    assert "timing" not in err and (tmp_path / "calibration" / "samples.json").read_text() == kept
    assert "compute interpolated between 7 samples of 15,625 to 1,000,000 rows x 32" in out
    assert png.stat().st_size > 0
    # another number of rows is another shape, kept beside the first, not over it
    assert main([*argv, "--rows", "100000"]) == 0
    assert "timing" in capsys.readouterr().err
    assert main([*argv]) == 0 and "timing" not in capsys.readouterr().err
    assert main([*argv, "--alpha", "1e-5"]) == 2
    assert "--alpha and --beta go together" in capsys.readouterr().err


def test_report_puts_predictions_beside_measurements(dask_calibration, tmp_path, capsys):
    calibration.save(tmp_path, dask_calibration)
    argv = ["sweep", "kmeans", "--engines", "dask", "--workers", "1,2", "--rows", "20000"]
    argv += ["--features", "8", "--k", "4", "--max-iter", "4", "--no-baseline"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    html = next(tmp_path.glob("*/report.html")).read_text()
    assert "predicted s/iter (modelled)" in html and "the 1-worker point is fitted" in html
    # The 1-worker point is the fit: its compute is the measured one; 2 workers is predicted.
    cells = re.findall(r"<td>~([0-9.]+) \(([+-][0-9]+)%\)</td>", html)
    assert len(cells) == 2 and all(float(s) > 0 for s, _ in cells)


def test_a_collective_pays_its_bytes_once_and_its_latency_per_repeat(dask_calibration):
    """A boosted tree's histograms: the tree's bytes once at beta, 2 (p - 1) latencies for each
    of its max_depth all-reduces at alpha (XGBoost's ring), nothing else on the link."""
    job = get_job("gbdt")
    config = job.config(max_depth=6)
    steps = job.explain(100_000, 64, 4, config)
    sends = sum(s.sends for s in steps if s.pattern)
    for link in (Link(0.0, 1e-9), Link(1e-5, 0.0)):
        (terms,) = costmodel.predict(
            lambda p: job.explain(100_000, 64, p, config),
            [4],
            dask_calibration,
            costmodel.Correction(),
            link,
        )
        expected = sends * 1e-9 if link.beta else 6 * 2 * 3 * 1e-5
        assert terms.communication == pytest.approx(expected)


def test_a_line_with_a_negative_fixed_cost_falls_back_to_a_factor_between_the_shapes():
    # Measured compute 8 ms over a 10 ms roofline and 40 ms over 40 ms: the line through them
    # has a negative intercept, so one factor serves both, halfway between their ratios.
    fitted = costmodel.fit_compute([(0.010, 0.008), (0.040, 0.040)], "two shapes")
    assert fitted.fixed == 0 and fitted.factor == pytest.approx(0.9)
    assert "median of 2 measured" in fitted.where[0]


def test_samples_are_what_one_worker_holds():
    gbdt, logreg = get_job("gbdt"), get_job("logreg")
    # data-parallel: a worker's share of the rows and every column, down to MIN_ROWS rows
    shapes = sample.sizes(gbdt, gbdt.config(mode="data"), 40_000, 16)
    assert shapes == [(40_000, 16, 1), (20_000, 16, 1), (10_000, 16, 1)]
    assert sample.MIN_ROWS > 5_000
    # feature-parallel: every row (each worker routes all of them per split), its columns
    shapes = sample.sizes(gbdt, gbdt.config(mode="feature"), 40_000, 16)
    assert shapes == [(40_000, f, 1) for f in (16, 8, 4, 2, 1)]
    # ADMM: all p shares side by side (each local solve is pulled toward the consensus of p)
    shapes = sample.sizes(logreg, logreg.config(solver="admm"), 40_000, 16)
    assert shapes == [(40_000, 16, 1), (20_000, 16, 2), (10_000, 16, 4)]


def test_samples_of_partitions_side_by_side_are_timed_kept_and_found_again(tmp_path):
    logreg = get_job("logreg")
    config = logreg.config(solver="admm")
    (one, two, four) = sample.measure(tmp_path, logreg, config, 40_000, 8, say=lambda _: None)
    assert [s.partitions for s in (one, two, four)] == [1, 2, 4]
    assert all(s.compute > 0 for s in (one, two, four))
    alone = sample.measure(
        tmp_path, logreg, logreg.config(), 40_000, 8, say=lambda _: None
    )  # L-BFGS: one partition of each share
    assert [s.partitions for s in alone] == [1, 1, 1]
    assert sample.cached(tmp_path, logreg, config, 40_000, 8) == [one, two, four]
