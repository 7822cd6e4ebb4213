"""`scaling explain` describes the steps the code runs, with the payloads it sends."""

from __future__ import annotations

import pytest

from jobs import JOBS, get_job, kmeans, logreg
from scaling.cli import main

CONFIGS = [(name, get_job(name).CONFIG()) for name in JOBS] + [
    ("logreg", logreg.LogRegConfig(solver=s)) for s in ("newton", "admm")
]


@pytest.mark.parametrize("name, config", CONFIGS, ids=lambda v: getattr(v, "solver", v))
def test_every_step_names_a_function_of_the_job(name, config):
    job = get_job(name)
    steps = job.explain(1000, 8, 4, config)
    assert steps[0].kind == "map" and steps[-1].kind == "update"
    for step in steps:
        assert callable(getattr(job, step.function)), step.function


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
    for name in ("_partial_sums", "_combine", "_update", "tree of depth 2"):
        assert name in out
    assert "bytes moved per iteration: ~4.2 kB up" in out  # 4 workers x 8 B x k=4 x (32 + 1)
