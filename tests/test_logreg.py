"""Logistic regression on every engine at 1 and 2 workers, in both executions, equals
scikit-learn's."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from jobs import logreg
from scaling.data import Blobs, Classification, open_file
from scaling.errors import DataError, UsageError

SOURCE = Classification(rows=20_000, features=6, seed=3)
X, Y = SOURCE.read(0, SOURCE.rows)
C = 0.5


GANG = "allreduce"
"""What the execution style does not change (metrics, hold-out, data, penalties, warnings) is
tested in a gang: one engine call per fit instead of one per iteration (~0.15 s on Spark). Both
styles are tested against scikit-learn by test_coefficients_equal_sklearn and
test_admm_reaches_the_same_objective."""


def _objective(coef, intercept, X=X, y=Y, C=C):
    z = X @ coef + intercept
    return float(np.sum(np.logaddexp(0, z) - y * z) + coef @ coef / (2 * C))


REF = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, Y)
REF_WB = np.r_[REF.coef_[0], REF.intercept_[0]]
REF_F = _objective(REF.coef_[0], REF.intercept_[0])


@pytest.fixture(scope="module")
def data(engine):
    ds = engine.load(SOURCE, partitions=3)
    yield ds
    engine.release(ds)


def _wb(result):
    return np.r_[result.coef, result.intercept]


@pytest.mark.parametrize("execution", ["driver", "allreduce"])
@pytest.mark.parametrize("solver", ["lbfgs", "newton"])
def test_coefficients_equal_sklearn(engine, data, solver, execution):
    config = logreg.LogRegConfig(solver=solver, C=C, tol=1e-8, execution=execution)
    result = logreg.fit(engine, data, config)
    assert result.converged
    assert np.linalg.norm(_wb(result) - REF_WB) <= 1e-4 * np.linalg.norm(REF_WB)
    assert result.objective == pytest.approx(REF_F, rel=1e-7)
    assert result.objective == pytest.approx(_objective(result.coef, result.intercept), rel=1e-12)
    assert result.classes == [0, 1]


def test_float32_rows_reach_the_same_objective(engine):
    """Held in float32, the map's products and residuals stay in float32 (as scikit-learn's
    on float32 rows); the driver's solver works in float64, to a tolerance float32's rounding
    of the gradient allows (at 1e-6 its line search fails on this data)."""
    ds = engine.load(SOURCE, partitions=3, dtype="float32")
    try:
        result = logreg.fit(engine, ds, logreg.LogRegConfig(C=C, tol=1e-5, execution=GANG))
    finally:
        engine.release(ds)
    assert result.converged
    assert np.linalg.norm(_wb(result) - REF_WB) <= 1e-3 * np.linalg.norm(REF_WB)
    assert result.objective == pytest.approx(REF_F, rel=1e-5)


@pytest.mark.parametrize("execution", ["driver", "allreduce"])
def test_admm_reaches_the_same_objective(engine, data, execution):
    config = logreg.LogRegConfig(solver="admm", C=C, tol=1e-5, execution=execution)
    result = logreg.fit(engine, data, config)
    assert result.converged
    assert result.objective == pytest.approx(REF_F, rel=1e-4)
    assert {"primal_residual", "dual_residual", "rho"} <= set(result.history[-1])


def test_metrics_match_sklearn(engine, data):
    result = logreg.fit(engine, data, logreg.LogRegConfig(C=C, tol=1e-8, execution=GANG))
    train = result.metrics["train"]
    z = X @ REF.coef_[0] + REF.intercept_[0]
    assert train["rows"] == len(X)
    assert train["accuracy"] == pytest.approx(REF.score(X, Y), abs=1e-4)
    assert train["roc_auc"] == pytest.approx(roc_auc_score(Y, z), abs=1e-4)
    assert train["log_loss"] == pytest.approx(np.mean(np.logaddexp(0, z) - Y * z), rel=1e-6)


def test_breast_cancer_from_a_parquet_file(engine, tmp_path):
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    bunch = load_breast_cancer()
    Xb = StandardScaler().fit_transform(bunch.data)
    frame = pd.DataFrame(Xb, columns=[f"x{i}" for i in range(Xb.shape[1])])
    frame["diagnosis"] = bunch.target
    frame.to_parquet(tmp_path / "bc.parquet", row_group_size=100)
    ds = engine.load(open_file(tmp_path / "bc.parquet", label="diagnosis"))
    result = logreg.fit(
        engine, ds, logreg.LogRegConfig(C=1.0, tol=1e-9, max_iter=1000, execution=GANG)
    )
    engine.release(ds)
    ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(Xb, bunch.target)
    ref_wb = np.r_[ref.coef_[0], ref.intercept_[0]]
    assert np.linalg.norm(_wb(result) - ref_wb) <= 1e-4 * np.linalg.norm(ref_wb)
    assert result.objective == pytest.approx(
        _objective(ref.coef_[0], ref.intercept_[0], Xb, bunch.target, 1.0), rel=1e-7
    )


def test_holdout_is_scored_apart(engine, data):
    result = logreg.fit(
        engine, data, logreg.LogRegConfig(C=C, holdout=0.25, seed=4, execution=GANG)
    )
    train, test = result.metrics["train"], result.metrics["test"]
    assert train["rows"] + test["rows"] == len(X)
    assert 0.22 < test["rows"] / len(X) < 0.28
    assert test["roc_auc"] > 0.8


def test_l1_admm_satisfies_the_optimality_conditions(engine, data):
    config = logreg.LogRegConfig(
        solver="admm", penalty="l1", C=0.002, tol=1e-7, max_iter=500, execution=GANG
    )
    result = logreg.fit(engine, data, config)
    w, b = result.coef, result.intercept
    z = X @ w + b
    grad = X.T @ (1 / (1 + np.exp(-z)) - Y)  # of the summed loss
    zero = np.abs(w) < 1e-8
    assert zero.any() and not zero.all()  # L1 made it sparse
    # KKT: |grad_j| <= 1/C where w_j = 0; grad_j = -sign(w_j)/C elsewhere.
    assert np.all(np.abs(grad[zero]) <= (1 / config.C) * 1.01)
    np.testing.assert_allclose(grad[~zero], -np.sign(w[~zero]) / config.C, rtol=0.02)


def test_bad_labels_are_refused(engine, tmp_path):
    frame = pd.DataFrame({"a": np.arange(30.0), "y": np.arange(30) % 3})
    frame.to_csv(tmp_path / "three.csv", index=False)
    ds = engine.load(open_file(tmp_path / "three.csv", label="y"))
    with pytest.raises(DataError, match=r"binary, but the labels hold 3 classes \[0, 1, 2\]"):
        logreg.fit(engine, ds, logreg.LogRegConfig())
    engine.release(ds)
    frame["y"] = 1
    frame.to_csv(tmp_path / "one.csv", index=False)
    ds = engine.load(open_file(tmp_path / "one.csv", label="y"))
    with pytest.raises(DataError, match="one class only"):
        logreg.fit(engine, ds, logreg.LogRegConfig())
    engine.release(ds)


def test_unlabelled_data_is_refused(engine):
    ds = engine.load(Blobs(rows=100, features=2))
    ds = type(ds)(**{**ds.__dict__, "labelled": False})
    with pytest.raises(DataError, match="needs labels"):
        logreg.fit(engine, ds, logreg.LogRegConfig())


def test_constant_feature_without_penalty_warns(tmp_path, engine):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "k": 3.0, "y": rng.integers(0, 2, 200)})
    frame.to_csv(tmp_path / "c.csv", index=False)
    ds = engine.load(open_file(tmp_path / "c.csv", label="y"))
    with pytest.warns(UserWarning, match=r"features \[1\] are constant"):
        logreg.fit(engine, ds, logreg.LogRegConfig(C=float("inf"), max_iter=50, execution=GANG))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # with a penalty the weights are identifiable: no warning
        logreg.fit(engine, ds, logreg.LogRegConfig(C=1.0, max_iter=50, execution=GANG))
    engine.release(ds)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"solver": "sgd"}, "solver must be one of lbfgs, newton, admm"),
        ({"penalty": "l1"}, "use --solver admm"),
        ({"C": 0.0}, "C must be > 0"),
        ({"max_iter": 0}, "max_iter must be"),
        ({"holdout": 1.0}, r"holdout must be in \[0, 1\)"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(UsageError, match=message):
        logreg.LogRegConfig(**kwargs)
