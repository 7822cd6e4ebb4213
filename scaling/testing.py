"""Worker-side functions of the engine contract suite.

They live in the package, not in ``tests/``, because workers import the functions they run by
module name and test modules are not importable in worker processes.
"""

from __future__ import annotations

import os

import numpy as np

from scaling.collectives.tcp import allgather
from scaling.data import Part
from scaling.engines.worker import GangContext


def shape(part: Part) -> tuple:
    return part.start, part.X.shape, part.X.dtype.str


def where(part: Part) -> tuple[int, int]:
    """Process and array identity: equal across calls when the partition stays cached."""
    return os.getpid(), id(part.X)


def column_sums(part: Part, scale: float) -> np.ndarray:
    return np.concatenate([part.X.sum(axis=0), [len(part.X)]]) * scale


def add(a, b):
    return a + b


def blas_threads(part: Part) -> int:
    from threadpoolctl import threadpool_info

    return max(p["num_threads"] for p in threadpool_info())


def total(part: Part, value: np.ndarray) -> float:
    return float(np.asarray(value).sum())


def fail(part: Part) -> None:
    raise ValueError(f"bad partition at row {part.start}")


def die(part: Part) -> None:
    """Kill the worker process, as an out-of-memory kill would."""
    os._exit(1)


def gather_rows(ctx: GangContext, parts: list[Part], tag: str) -> tuple:
    ranks = allgather(ctx, (ctx.rank, sum(len(p.X) for p in parts)), timeout=60)
    return ctx.rank, ctx.world, tag, ranks


def scaled_sum(part: Part, scale: float) -> float:
    return float(part.X.sum()) * scale


def larger(a, b):
    return max(a, b)


def reduce_with(steps, combine) -> float:
    """A loop of one map-reduce (:func:`scaling.execution.execute`), summing or not."""
    return steps.map_reduce(scaled_sum, combine, 1.0)
