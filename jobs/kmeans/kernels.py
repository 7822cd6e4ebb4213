"""What runs on a partition: the assignment and the partial sums of a Lloyd iteration (the map),
the update, and k-means||'s per-partition steps."""

from __future__ import annotations

import numpy as np

from jobs.common import blas, compiled
from scaling.data import Part, row_uniforms

ROW_BLOCK = 1_024
"""Rows per distance block: the (block x k) distances stay in cache for the pass over them
(1,024 rows: 0.042 s per 500,000 x 32 rows, k = 16; 256: 0.045; 4,096: 0.049), where NumPy
computes them (labels, inertia, k-means||)."""
LLOYD_BLOCK = 1_024
"""Rows per gemm call in the compiled Lloyd map: fewer calls into OpenBLAS, the (block x k)
buffer still in cache. 1,024 rows were 0.94-0.95x scikit-learn's float32 step in three runs
of four, 512 rows 0.95-1.25x (one thread each, side by side)."""


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
def _lloyd_map(
    X: np.ndarray, centers: np.ndarray, norms: np.ndarray, sums: np.ndarray, counts: np.ndarray,
    block: int, gemm,
) -> None:  # pragma: no cover - compiled  # fmt: skip
    """For each block of rows: ``-2 x.c`` by one gemm call into a (block x k) buffer that
    stays in cache, then each row's nearest centre (the argmin of ``||c||^2 - 2 x.c``), whose
    sum and count it joins, in one pass over the block.

    scikit-learn's Cython Lloyd step does the same. Called from compiled code, gemm costs no
    Python call per block: 0.76x the time of the NumPy-and-scipy loop it replaced, per
    200,000 x 32 rows, k = 16 (benchmarks/results/kernels.md).
    """
    n, d = X.shape
    k = centers.shape[0]
    dist = np.empty((block, k), X.dtype)
    # a block's sums in X's dtype, added to the float64 ones once per block: float32 rows
    # converted to float64 one by one cost 6% of the whole (float32 error over a block: 1e-8
    # of the sums)
    local = np.empty((k, d), X.dtype)
    # gemm's Fortran arguments, all by reference: C (k x d, row-major: its transpose to
    # Fortran) times the block (rows x d, row-major: d x rows to Fortran) is a column-major
    # (k x rows) result, which is the (rows x k) row-major products
    trans, no_trans = np.array([ord("T")], np.uint8), np.array([ord("N")], np.uint8)
    kk, dd, rows = np.array([k], np.int32), np.array([d], np.int32), np.array([0], np.int32)
    alpha, beta = np.array([-2.0], X.dtype), np.array([0.0], X.dtype)
    for start in range(0, n, block):
        b = min(block, n - start)
        rows[0] = b
        Xb = X[start : start + b]
        gemm(trans.ctypes, no_trans.ctypes, kk.ctypes, rows.ctypes, dd.ctypes, alpha.ctypes,
             centers.ctypes, dd.ctypes, Xb.ctypes, dd.ctypes, beta.ctypes, dist.ctypes,
             kk.ctypes)  # fmt: skip
        local[:] = 0
        for i in range(b):
            # ||c||^2 added here, not written into the buffer for gemm to add to: filling
            # the buffer row by row cost 15% of the whole
            best, best_dist = 0, dist[i, 0] + norms[0]
            for j in range(1, k):
                v = dist[i, j] + norms[j]
                if v < best_dist:
                    best, best_dist = j, v
            counts[best] += 1
            for f in range(d):
                local[best, f] += Xb[i, f]
        sums += local


def _partial_sums(part: Part, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map step: per-centre sums of the rows (k x d) and counts (k), accumulated in float64.

    Notes
    -----
    O(n k d) flops for the distances, a BLAS gemm per block of rows, then O(n (k + d)) for the
    assignment and the sums in the same compiled pass over the block while it is in cache.
    Returns k (d + 1) numbers whatever the partition size. Like scikit-learn's Lloyd iteration
    it skips the inertia, which needs ``||x||^2``; :func:`fit` computes it once, at the final
    centres.
    """
    k, d = centers.shape
    X = np.ascontiguousarray(part.X)
    c = np.ascontiguousarray(centers, dtype=X.dtype)
    sums, counts = np.zeros((k, d)), np.zeros(k)
    norms = np.einsum("ij,ij->i", c, c)
    _lloyd_map(X, c, norms, sums, counts, LLOYD_BLOCK, blas("gemm", X.dtype))
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
