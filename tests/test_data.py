"""Data sources: reproducible whatever the partitioning, files read partition-wise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scaling.data import Blobs, Classification, open_file, partition_bounds
from scaling.errors import DataError


@pytest.mark.parametrize(
    "source",
    [
        Blobs(rows=40_000, features=3, seed=5),
        Classification(rows=40_000, features=3, seed=5, flip=0.1),
    ],
)
@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_generators_do_not_depend_on_partitioning(source, partitions):
    X, y = source.read(0, source.rows)
    pieces = [source.read(a, b) for a, b in partition_bounds(source.rows, partitions)]
    np.testing.assert_array_equal(np.vstack([p[0] for p in pieces]), X)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), y)


def test_seeds_differ():
    a = Blobs(rows=10, features=2, seed=1).read(0, 10)[0]
    b = Blobs(rows=10, features=2, seed=2).read(0, 10)[0]
    assert not np.array_equal(a, b)


def test_classification_labels_follow_the_true_weights():
    source = Classification(rows=20_000, features=4, seed=0)
    X, y = source.read(0, source.rows)
    w, b = source.true_weights()
    assert set(np.unique(y)) == {0, 1}
    assert np.mean((X @ w + b > 0) == y) > 0.75


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"a": rng.normal(size=103), "b": rng.normal(size=103), "label": rng.integers(0, 2, 103)}
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_read_partition_wise(tmp_path, table, suffix):
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, row_group_size=10)
    source = open_file(path, label="label")
    assert (source.rows, source.features, source.labelled) == (103, 2, True)
    pieces = [source.read(a, b) for a, b in partition_bounds(103, 4)]
    np.testing.assert_allclose(np.vstack([p[0] for p in pieces]), table[["a", "b"]].to_numpy())
    np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), table["label"])


def test_a_csv_counts_the_rows_it_reads_not_its_blank_lines(tmp_path, table):
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    path.write_text(path.read_text() + "\n\n\n")
    source = open_file(path, label="label")
    assert source.rows == 103
    assert len(source.read(0, source.rows)[0]) == 103


def test_npy_is_memory_mapped(tmp_path):
    X = np.arange(30.0).reshape(10, 3)
    np.save(tmp_path / "x.npy", X)
    source = open_file(tmp_path / "x.npy")
    np.testing.assert_array_equal(source.read(4, 7)[0], X[4:7])


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("x.txt", b"1,2", "unsupported data file type"),
        ("x.npy", b"not an array", "cannot read"),
        ("x.parquet", b"PAR1 truncated", "cannot read"),
        ("x.csv", b"a,b\n1,x\n", r"non-numeric columns \['b'\]"),
    ],
)
def test_malformed_files(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        open_file(tmp_path / name)


def test_missing_file_and_label(tmp_path, table):
    with pytest.raises(DataError, match="data file not found"):
        open_file(tmp_path / "nope.csv")
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="label column 'y' not in"):
        open_file(tmp_path / "t.csv", label="y")
