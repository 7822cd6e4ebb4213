"""`scaling explain` describes the steps the code runs, with the payloads it sends."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobs import JOBS, get_job, kmeans, logreg, sgd
from scaling.cli import main
from scaling.measure.host import host_facts
from scaling.model import calibration
from scaling.model.patterns import Link
from scaling.model.steps import function_of

CONFIGS = (
    [(name, get_job(name).config()) for name in JOBS]
    + [("logreg", logreg.LogRegConfig(solver=s)) for s in ("newton", "admm")]
    + [("sgd", sgd.SGDConfig(strategy=s)) for s in sgd.STRATEGIES]
)


@pytest.mark.parametrize(
    "name, config",
    CONFIGS,
    ids=lambda v: getattr(v, "solver", None) or getattr(v, "strategy", None) or v,
)
def test_every_step_names_a_function_of_the_job(name, config):
    job = get_job(name)
    steps = job.explain(1000, 8, 4, config)
    assert steps[0].kind == "map" and steps[-1].kind == "update"
    for step in steps:
        assert callable(function_of(name, step.function)), step.function


def test_payloads_follow_the_formulas():
    map_, combine, update = kmeans.explain(10_000, 32, 2, kmeans.KMeansConfig(k=16))
    assert map_.sends == 8 * 16 * 33 == combine.sends  # k (d + 1) float64 per partial result
    assert map_.flops == pytest.approx(2 * 10_000 * 16 * 32 / 2 + 10_000 * 32 / 2)
    assert update.sends == 8 * 16 * 32  # the centres, to each worker
    lbfgs = logreg.explain(10_000, 32, 2, logreg.LogRegConfig())[0]
    newton = logreg.explain(10_000, 32, 2, logreg.LogRegConfig(solver="newton"))[0]
    assert lbfgs.sends == 8 * 35 and newton.sends == 8 * (35 + 33**2)


def test_cli_explain(capsys):
    assert main(["explain", "kmeans", "--rows", "1000", "--k", "4", "--workers", "4"]) == 0
    out = capsys.readouterr().out
    for name in ("_partial_sums", "add_each", "_update", "tree of depth 2"):
        assert name in out
    assert "bytes moved per iteration: ~4.2 kB up" in out  # 4 workers x 8 B x k=4 x (32 + 1)


def test_sgd_payloads_follow_the_formulas():
    config = sgd.SGDConfig(hidden="64")
    P = sgd.count_parameters(32, 2, config)
    assert P == 33 * 64 + 65 * 2
    ring = sgd.JOB.explain(10_000, 32, 4, config)
    assert ring[1].sends == int(2 * 3 / 4 * 8 * P)  # 2 (p - 1) / p x P float64 per worker
    local = sgd.JOB.explain(10_000, 32, 4, sgd.SGDConfig(hidden="64", strategy="local-sgd"))
    assert local[1].sends == int(2 * 3 / 4 * 8 * P) // 8  # the same, every H = 8 steps
    assert sgd.step_bytes(config, 32, 2, "float64", 4) == 4 * 3 * 8 * P


def test_help_explain_and_predict_import_no_training_library(tmp_path):
    """``scaling --help``, ``explain`` and a calibrated ``predict`` whose samples are kept
    read configs and steps: they import no training library and start no engine (numba and
    scipy's optimisers load where the kernels run); ``scaling --help`` not even NumPy, nor
    any job's module. The first ``predict`` of a shape times the job on samples of it."""
    cal = calibration.Calibration(
        engine="dask",
        host=host_facts(),
        versions={},
        measured_at="now",
        workers=[1, 2],
        call=(0.01, 0.001),
        gang_iteration=1e-4,
        up=Link(0, 1e-9),
        down=Link(0, 1e-9),
        peer=Link(2e-5, 1e-9),
        gemm=1e10,
        bandwidth=1e10,
        straggle=0.05,
    )
    calibration.save(tmp_path, cal)
    code = (
        "import sys\n"
        "from scaling.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'torch', 'xgboost', 'lightgbm', 'ray', 'dask', 'pyspark', 'numba',\n"
        "         'scipy.optimize'} & set(sys.modules)\n"
        "print('@@', sorted(heavy))\n"
        "print('light', not {'numpy', 'jobs.kmeans'} & set(sys.modules))\n"
    )
    predict = ["predict", "gbdt", "--engine", "dask", "--store", str(tmp_path)]
    predict += ["--rows", "20000", "--features", "8"]
    first = subprocess.run(
        [sys.executable, "-c", code, *predict], capture_output=True, text=True, timeout=300
    )
    assert "timing gbdt's iteration on 2 samples" in first.stderr, first.stderr[-300:]
    assert "xgboost" in first.stdout  # it trained on them
    for argv in (["--help"], ["explain", "kmeans", "--workers", "2"], predict):
        done = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120
        )
        assert "@@ []" in done.stdout, (argv, done.stdout[-300:], done.stderr[-300:])
        assert ("light True" in done.stdout) == (argv == ["--help"]), done.stdout[-300:]
