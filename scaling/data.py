"""Data sources that workers read partition by partition.

A source is a small frozen description (a seed and a shape, or a file path) that the driver
ships to the workers; each worker then materialises only its own row range with
``source.read(start, stop)``. Nothing big passes through the driver.

Synthetic generators draw rows in fixed blocks of ``BLOCK`` rows, block ``b`` from its own
generator seeded by ``(seed, 0, b)``. A row's value therefore depends only on the seed and its
global index, never on how the rows are split into partitions or workers.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from scaling.errors import DataError, first_line

BLOCK = 16_384
"""Rows per generator block (the unit of reproducibility of synthetic data)."""


@dataclass(frozen=True, kw_only=True)
class Part:
    """One partition as it lives on a worker.

    Attributes
    ----------
    X : ndarray of shape (rows, features)
        Feature matrix, C-contiguous, in the dataset's dtype.
    y : ndarray of shape (rows,) or None
        Labels, when the source has them.
    start : int
        Global index of the first row, so that per-row randomness and row look-ups do not
        depend on the partitioning.
    index : int
        Partition number, for jobs that keep per-partition state on the driver (ADMM).
    """

    X: np.ndarray
    y: np.ndarray | None
    start: int
    index: int = 0

    @property
    def stop(self) -> int:
        return self.start + len(self.X)


def partition_bounds(rows: int, partitions: int) -> list[tuple[int, int]]:
    """Split ``rows`` into ``partitions`` contiguous ranges whose sizes differ by at most one."""
    edges = np.linspace(0, rows, partitions + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in pairwise(edges)]


def block_draws(
    seed: int, start: int, stop: int, draw: Callable[[np.random.Generator, int], np.ndarray]
) -> np.ndarray:
    """Rows ``[start, stop)`` of a stream drawn block by block, ``draw(rng, n)`` per block.

    The stream is identical however it is sliced: block ``b`` always comes from
    ``default_rng((seed, 0, b))`` and always draws ``BLOCK`` rows.
    """
    first, last = start // BLOCK, (stop - 1) // BLOCK
    blocks = [draw(np.random.default_rng((seed, 0, b)), BLOCK) for b in range(first, last + 1)]
    stream = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    offset = first * BLOCK
    return stream[start - offset : stop - offset]


def row_uniforms(seed: int, start: int, stop: int) -> np.ndarray:
    """One U(0, 1) number per global row in ``[start, stop)``, independent of partitioning."""
    return block_draws(seed, start, stop, lambda rng, n: rng.random(n))


def held_out(seed: int, start: int, stop: int, fraction: float) -> np.ndarray:
    """Whether each global row in ``[start, stop)`` is held out: a ``fraction`` of the rows,
    chosen from ``seed`` row by row, so the same split whatever the partitioning."""
    return row_uniforms(seed, start, stop) < fraction


@dataclass(frozen=True)
class Source(ABC):
    """A description of a dataset that workers can read a row range of."""

    rows: int
    features: int

    @property
    def labelled(self) -> bool:
        return False

    @abstractmethod
    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``[start, stop)``: features and labels (None when unlabelled)."""

    def describe(self) -> dict:
        """JSON-able description for run records."""
        return {"kind": type(self).__name__.lower(), "rows": self.rows, "features": self.features}


@dataclass(frozen=True, kw_only=True)
class Blobs(Source):
    """Isotropic Gaussian blobs for clustering (like ``sklearn.datasets.make_blobs``).

    Centres are drawn uniformly in ``[-center_box, center_box]^features`` from ``seed``; each
    row picks a centre uniformly and adds ``N(0, cluster_std^2)`` noise. ``y`` is the centre.
    """

    centers: int = 8
    cluster_std: float = 1.0
    center_box: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_shape(self.rows, self.features, self.seed)
        if self.centers < 1:
            raise DataError(f"blobs need centers >= 1, got {self.centers}")

    @property
    def labelled(self) -> bool:
        return True

    def true_centers(self) -> np.ndarray:
        rng = np.random.default_rng((self.seed, 1))
        box = self.center_box
        return rng.uniform(-box, box, size=(self.centers, self.features))

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        means = self.true_centers()
        d = self.features

        def draw(rng: np.random.Generator, n: int) -> np.ndarray:
            labels = rng.integers(self.centers, size=n)
            noise = rng.standard_normal((n, d))
            return np.column_stack([means[labels] + self.cluster_std * noise, labels])

        block = block_draws(self.seed, start, stop, draw)
        return block[:, :d], block[:, d].astype(np.int64)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "centers": self.centers,
            "cluster_std": self.cluster_std,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Classification(Source):
    """Binary classification with a known true weight vector.

    ``X ~ N(0, I)``; ``y = 1[X w + b + logistic noise > 0]``, then a ``flip`` fraction of labels
    is flipped. ``w ~ N(0, 1)`` and ``b`` are drawn from ``seed``.
    """

    seed: int = 0
    flip: float = 0.0

    def __post_init__(self) -> None:
        _check_shape(self.rows, self.features, self.seed)
        if not 0.0 <= self.flip < 0.5:
            raise DataError(f"flip must be in [0, 0.5), got {self.flip}")

    @property
    def labelled(self) -> bool:
        return True

    def true_weights(self) -> tuple[np.ndarray, float]:
        rng = np.random.default_rng((self.seed, 1))
        return rng.standard_normal(self.features), float(rng.standard_normal())

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        w, b = self.true_weights()
        d = self.features

        def draw(rng: np.random.Generator, n: int) -> np.ndarray:
            X = rng.standard_normal((n, d))
            logit = X @ w + b + rng.logistic(size=n)
            y = (logit > 0) ^ (rng.random(n) < self.flip)
            return np.column_stack([X, y])

        block = block_draws(self.seed, start, stop, draw)
        return block[:, :d], block[:, d].astype(np.int64)

    def describe(self) -> dict:
        return {**super().describe(), "seed": self.seed, "flip": self.flip}


@dataclass(frozen=True)
class NpyFile(Source):
    """A 2-D numeric ``.npy`` file, memory-mapped so a worker touches only its rows."""

    path: str = ""

    def read(self, start: int, stop: int) -> tuple[np.ndarray, None]:
        return np.load(self.path, mmap_mode="r")[start:stop], None

    def describe(self) -> dict:
        return {**super().describe(), "kind": "file", "path": self.path}


@dataclass(frozen=True)
class TableFile(Source):
    """A Parquet or CSV table of numeric columns, with an optional label column."""

    path: str = ""
    columns: tuple[str, ...] = ()
    label: str | None = None

    @property
    def labelled(self) -> bool:
        return self.label is not None

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        frame = _read_rows(
            self.path, [*self.columns, *([self.label] if self.label else [])], start, stop
        )
        X = frame[list(self.columns)].to_numpy(dtype=np.float64)
        y = frame[self.label].to_numpy() if self.label else None
        return X, y

    def describe(self) -> dict:
        return {**super().describe(), "kind": "file", "path": self.path, "label": self.label}


def _read_rows(path: str, columns: list[str], start: int, stop: int):
    """Rows ``[start, stop)`` of a Parquet or CSV file, reading as little as the format allows."""
    import pandas as pd

    if path.endswith(".csv"):
        # skiprows keeps the header line (line 0) and skips the data lines before `start`.
        return pd.read_csv(path, usecols=columns, skiprows=range(1, start + 1), nrows=stop - start)
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    groups, first, offset = [], None, 0
    for g in range(pf.num_row_groups):  # only the row groups that overlap [start, stop)
        n = pf.metadata.row_group(g).num_rows
        if offset < stop and offset + n > start:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    table = pf.read_row_groups(groups, columns=columns)
    return table.slice(start - first, stop - start).to_pandas()


def _check_shape(rows: int, features: int, seed: int) -> None:
    if rows < 1 or features < 1:
        raise DataError(f"data needs rows >= 1 and features >= 1, got {rows} x {features}")
    if seed < 0:  # NumPy's generators take non-negative seeds only
        raise DataError(f"the seed must be an integer >= 0, got {seed}")


FILE_SUFFIXES = (".npy", ".parquet", ".csv")


def open_file(path: str | os.PathLike, label: str | None = None) -> Source:
    """Inspect a data file on the driver (shape and column types only) and describe it.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` (2-D numeric array), ``.parquet`` or ``.csv`` (numeric columns) file that the
        workers can read at the same path.
    label : str, optional
        Name of the label column of a table; it is excluded from the features.

    Raises
    ------
    DataError
        When the file is missing, of an unknown type, malformed, or has non-numeric columns.
    """
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise DataError(
            f"data file not found: {path}; pass an existing .npy, .parquet or .csv "
            "file, or omit --data to use the synthetic generator"
        )
    if p.suffix not in FILE_SUFFIXES:
        raise DataError(
            f"unsupported data file type {p.suffix!r} ({path}); "
            f"use one of {', '.join(FILE_SUFFIXES)}"
        )
    try:
        if p.suffix == ".npy":
            if label is not None:
                raise DataError(f"--label needs a table (.parquet or .csv); {path} is an array")
            arr = np.load(p, mmap_mode="r")
            if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
                raise DataError(
                    f"{path} holds a {arr.ndim}-D {arr.dtype} array; "
                    "save a 2-D numeric array (rows x features)"
                )
            if 0 in arr.shape:
                raise DataError(
                    f"{path} holds a {arr.shape[0]} x {arr.shape[1]} array; "
                    "it needs at least one row and one column"
                )
            return NpyFile(rows=arr.shape[0], features=arr.shape[1], path=str(p))
        columns, rows = _table_schema(p)
    except DataError:
        raise
    except Exception as e:  # any parser's complaint means the file is malformed
        raise DataError(
            f"cannot read {path}: {type(e).__name__}: {first_line(e)}; "
            "check that it is a valid, complete file"
        ) from e
    if label is not None and label not in columns:
        raise DataError(f"label column {label!r} not in {path}; columns are {list(columns)}")
    features = tuple(c for c in columns if c != label)
    if rows < 1 or not features:  # before the types: a header alone has no numeric column
        raise DataError(
            f"{path} has {rows} rows and {len(features)} feature columns; "
            "it needs at least one of each"
        )
    bad = [c for c, numeric in columns.items() if not numeric and c != label]
    if bad:
        raise DataError(f"non-numeric columns {bad} in {path}; drop or encode them first")
    return TableFile(rows=rows, features=len(features), path=str(p), columns=features, label=label)


def _table_schema(p: Path) -> tuple[dict[str, bool], int]:
    """Column name -> is numeric, and the row count, read without loading the data."""
    import pandas as pd

    if p.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(p)
        numeric = {
            f.name: pa.types.is_integer(f.type)
            or pa.types.is_floating(f.type)
            or pa.types.is_boolean(f.type)
            for f in pf.schema_arrow
        }
        return numeric, pf.metadata.num_rows
    sample = pd.read_csv(p, nrows=1000)
    numeric = {str(c): pd.api.types.is_numeric_dtype(t) for c, t in sample.dtypes.items()}
    with open(p, "rb") as f:  # the lines pandas reads: it skips blank ones
        lines = sum(1 for line in f if line.strip())
    return numeric, lines - 1  # minus the header line
