"""The CLI end to end: records written, and every bad input one clear line with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scaling.cli import main
from scaling.results import load


def run(capsys, *argv):
    """Exit code, stdout and stderr of ``scaling *argv`` (argparse's own errors included)."""
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_run_writes_records_and_centres(tmp_path, capsys):
    out = tmp_path / "runs"
    code, stdout, _ = run(
        capsys,
        "run",
        "kmeans",
        "--workers",
        "1,2",
        "--rows",
        "20000",
        "--features",
        "4",
        "--k",
        "3",
        "--out",
        str(out),
    )
    assert code == 0
    assert "speedup" in stdout and "inertia=" in stdout
    records = load(out).records
    assert [r["workers"] for r in records] == [1, 2]
    for r in records:
        assert r["job"] == "kmeans" and r["engine"] == "local" and r["rows"] == 20000
        assert r["config"]["k"] == 3 and r["quality"]["inertia"] > 0
        assert len(r["timings"]["iterations"]) == r["quality"]["n_iter"]
        assert set(r["split"]) == {"compute", "communication", "overhead"}
        assert r["host"]["cores"] >= 1 and "numpy" in r["versions"]
        assert np.load(out / r["sweep_id"] / r["artifacts"]["centers"]).shape == (3, 4)
    (folder,) = {out / r["sweep_id"] for r in records}  # a sweep's runs in one folder
    assert sorted(f.name for f in folder.iterdir() if f.suffix == ".jsonl") == ["records.jsonl"]


def test_json_lines_and_data_file(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(500, 3))
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "c.npy", X[:2])
    code, stdout, _ = run(
        capsys,
        "run",
        "kmeans",
        "--data",
        str(tmp_path / "x.npy"),
        "--k",
        "2",
        "--init",
        str(tmp_path / "c.npy"),
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    assert code == 0
    (record,) = [json.loads(line) for line in stdout.splitlines()]
    assert record["data"]["kind"] == "file" and record["rows"] == 500


@pytest.fixture
def files(tmp_path):
    X = np.ones((20, 2))
    np.save(tmp_path / "ok.npy", X)
    X[3, 1] = np.inf
    np.save(tmp_path / "inf.npy", X)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,oops\n")
    (tmp_path / "header.csv").write_text("a,b\n")
    np.save(tmp_path / "empty.npy", np.zeros((0, 2)))
    return tmp_path


@pytest.mark.parametrize(
    "args, message",
    [
        (["--engine", "flink"], "unknown engine 'flink'; choose one of local, ray, dask, spark"),
        (["--k", "0"], "k must be an integer >= 1"),
        (["--rows", "10", "--k", "11"], "k=11 is larger than the number of rows (10)"),
        (["--workers", "0"], "workers must be positive integers"),
        (["--workers", "two"], "workers must be positive integers"),
        (["--data", "{d}/missing.npy"], "data file not found"),
        (["--data", "{d}/bad.csv"], "non-numeric columns ['b']"),
        (["--data", "{d}/inf.npy"], "1 NaN or infinite values in rows 0-20"),
        (["--data", "{d}/ok.npy", "--label", "y"], "--label needs a table"),
        (["--engine", "dask", "--address", "tcp://127.0.0.1:9"], "cannot reach a dask cluster"),
        (["--engine", "ray", "--address", "127.0.0.1:9"], "cannot reach a ray cluster"),
        (["--engine", "spark", "--address", "spark://127.0.0.1:9"], "cannot reach a spark cluster"),
        (["--engine", "spark", "--address", "http://127.0.0.1:9"], "use one of spark://"),
        (["--engine", "local", "--address", "tcp://127.0.0.1:9"], "local engine runs in this"),
        (["--seed", "-1"], "the seed must be an integer >= 0, got -1"),
        (["--data", "{d}/empty.npy"], "holds a 0 x 2 array; it needs at least one row"),
        (["--data", "{d}/header.csv"], "has 0 rows and 2 feature columns"),
        # checked before any work, so that nothing computed is lost
        (["--out", "{d}/ok.npy"], "--out {d}/ok.npy: cannot write there"),
        (["--out", "{d}/ok.npy/under"], "--out {d}/ok.npy/under: cannot write there"),
        (["--rows", "100000000000000"], "of memory for the data alone, and this machine has"),
        (["--engine", "dask", "--workers", "1000"], "1000 dask workers on this machine's"),
    ],
)
def test_bad_input_is_one_clear_line(files, capsys, args, message):
    out = files / "out"
    argv = ["run", "kmeans", "--rows", "100", "--out", str(out), *[a.format(d=files) for a in args]]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message.format(d=files) in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() or not list(out.glob("**/*.jsonl"))


def test_a_sweep_checks_its_store_and_report_before_any_work(files, capsys):
    argv = ["sweep", "kmeans", "--engines", "local", "--rows", "100", "--no-baseline"]
    argv += ["--out", str(files / "out"), "--report", str(files / "ok.npy")]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "--report" in err and "cannot write there" in err
    assert not list((files / "out").glob("**/*.jsonl"))


def test_one_class_for_boosting_says_so(tmp_path, capsys):
    (tmp_path / "ones.csv").write_text("a,y\n" + "".join(f"{i},1\n" for i in range(50)))
    argv = ["run", "gbdt", "--data", str(tmp_path / "ones.csv"), "--label", "y"]
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "out"))
    assert code == 2 and "the labels hold one class only (1)" in err


def test_unknown_job(capsys):
    code, _, err = run(capsys, "run", "svm")
    assert code == 2 and "invalid choice: 'svm'" in err and err.count("\n") == 1


def test_the_demo_runs_a_map_reduce_job_in_both_styles_and_a_gang_job_in_its_own():
    from jobs import JOBS, get_job
    from scaling.cli.runs import _styles

    styles = {
        name: [getattr(c, "execution", None) for c in _styles(get_job(name).demo_config)]
        for name in JOBS
    }
    assert styles == {
        "kmeans": ["driver", "allreduce"],
        "logreg": ["driver", "allreduce"],
        "sgd": ["driver"],  # ring-allreduce: a gang of its own
        "gbdt": [None],
    }
