"""What runs on a partition: the assignment and the partial sums of a Lloyd iteration (the map),
the update, and k-means||'s per-partition steps."""

from __future__ import annotations

import numpy as np

from jobs.common import compiled
from scaling.data import Part, row_uniforms

ROW_BLOCK = 1_024
"""Rows per distance block: the (block x k) distances stay in cache for the pass over them
(1,024 rows: 0.042 s per 500,000 x 32 rows, k = 16; 256: 0.045; 4,096: 0.049)."""


def _distances(
    X: np.ndarray, centers: np.ndarray, norms: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """``||c||^2 - 2 x.c`` for each row of one block and each centre, a (rows x k) array.

    That is ``||x - c||^2`` less ``||x||^2``, which does not change the nearest centre: one
    (rows x d) by (d x k) matrix product, the O(n k d) part, done by BLAS's gemm. Called on
    the transposes, ``(k x d) (d x rows)`` in column-major order, which is the (rows x k)
    row-major result without a copy of X: 1.3x faster than ``X @ C.T`` for k = 16, d = 32
    (0.042 against 0.055 s per 500,000 rows, one thread). ``out``: a (k x rows)
    Fortran-ordered buffer to write into.
    """
    from scipy.linalg.blas import get_blas_funcs

    gemm = get_blas_funcs("gemm", (X,))
    if out is None:
        out = np.empty((len(centers), len(X)), X.dtype, order="F")
    out[:] = norms[:, None]
    return gemm(-2.0, centers, X.T, beta=1.0, c=out, overwrite_c=True).T


def _nearest(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre and the squared distance to it, for each row of one block."""
    dist = _distances(X, centers, np.einsum("ij,ij->i", centers, centers))
    labels = dist.argmin(axis=1)
    best = dist[np.arange(len(X)), labels] + np.einsum("ij,ij->i", X, X)
    return labels, np.maximum(best, 0.0)


def _blocks(part: Part):
    for s in range(0, len(part.X), ROW_BLOCK):
        yield part.X[s : s + ROW_BLOCK]


@compiled
def _assign_and_sum(
    X: np.ndarray, dist: np.ndarray, sums: np.ndarray, counts: np.ndarray
) -> None:  # pragma: no cover - compiled
    """For each row: its nearest centre (argmin of its distances), whose sum and count it joins.

    One compiled pass over the block while it is in cache, like scikit-learn's Cython Lloyd
    step: the NumPy equivalent (argmin, then a sparse one-hot product) took 0.094 s instead of
    0.069 s per 1M x 32 rows, k = 16.
    """
    for i in range(dist.shape[0]):
        best, best_dist = 0, dist[i, 0]
        for j in range(1, dist.shape[1]):
            if dist[i, j] < best_dist:
                best, best_dist = j, dist[i, j]
        counts[best] += 1
        for f in range(X.shape[1]):
            sums[best, f] += X[i, f]


def _partial_sums(part: Part, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map step: per-centre sums of the rows (k x d) and counts (k), accumulated in float64.

    Notes
    -----
    O(n k d) flops for the distances, a BLAS product per row block, then O(n (k + d)) for the
    assignment and the sums in one compiled pass (no Python loop, no ``np.add.at``). Returns
    k (d + 1) numbers whatever the partition size. Like scikit-learn's Lloyd iteration it skips
    the inertia, which needs ``||x||^2``; :func:`fit` computes it once, at the final centres.
    """
    k, d = centers.shape
    c = np.asfortranarray(centers, dtype=part.X.dtype)  # gemm takes it without a copy
    norms = np.einsum("ij,ij->i", c, c)
    sums, counts = np.zeros((k, d)), np.zeros(k)
    buffer = np.empty((k, ROW_BLOCK), part.X.dtype, order="F")
    for X in _blocks(part):
        _assign_and_sum(X, _distances(X, c, norms, out=buffer[:, : len(X)]), sums, counts)
    return sums, counts


def _update(centers: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, float]:
    """Update step: the new centres and the summed squared shift. Empty clusters stay put."""
    new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
    return new, float(((new - centers) ** 2).sum())


def _labels(part: Part, centers: np.ndarray) -> np.ndarray:
    c = centers.astype(part.X.dtype, copy=False)
    return np.concatenate([_nearest(X, c)[0] for X in _blocks(part)] or [np.zeros(0, int)])


def _inertia(part: Part, centers: np.ndarray) -> float:
    c = centers.astype(part.X.dtype, copy=False)
    return float(sum(_nearest(X, c)[1].sum() for X in _blocks(part)))


def _moments(part: Part) -> tuple[np.ndarray, np.ndarray, int]:
    X = part.X.astype(np.float64, copy=False)
    return X.sum(axis=0), np.einsum("ij,ij->j", X, X), len(X)


def _take_rows(part: Part, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows with these global indices that this partition holds, and their indices."""
    mine = rows[(rows >= part.start) & (rows < part.stop)]
    return mine, part.X[mine - part.start].astype(np.float64)


def _nearest_counts(part: Part, candidates: np.ndarray) -> np.ndarray:
    labels = _labels(part, candidates)
    return np.bincount(labels, minlength=len(candidates)).astype(np.float64)


def _sample(part: Part, candidates: np.ndarray, ell: float, phi: float, seed: int) -> np.ndarray:
    """Rows drawn independently with probability min(1, ell * d^2(x, C) / phi_X(C)).

    Each row's coin is drawn from its global index, so the sample does not depend on how
    the rows are partitioned.
    """
    c = candidates.astype(part.X.dtype, copy=False)
    dist = np.concatenate([_nearest(X, c)[1] for X in _blocks(part)])
    keep = row_uniforms(seed, part.start, part.stop) < ell * dist / phi
    return part.X[keep].astype(np.float64)
