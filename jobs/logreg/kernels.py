"""What runs on a partition: the loss and its gradient (and Hessian) over the partition's
training rows, ADMM's local solve, the held-out metrics, and the description of the labels and
ranges."""

from __future__ import annotations

import math

import numpy as np

from jobs.common import blas, compiled
from jobs.logreg.config import AUC_BINS
from scaling.data import Part, held_out


def _rows(part: Part, positive, holdout: float, seed: int, train: bool = True):
    """X and 0/1 labels of the training (or held-out) rows of a partition."""
    y = (part.y == positive).astype(part.X.dtype)
    if holdout == 0:
        return (part.X, y) if train else (part.X[:0], y[:0])
    held = held_out(seed, part.start, part.stop, holdout)
    keep = ~held if train else held
    return part.X[keep], y[keep]


BLOCK = 512
"""Rows per block of the fused pass: a block of X (128 KiB at 32 float64 features) is still in
cache for the second product, and the block's ``1 + e^-|z|``, each in (1, 2], multiply to less
than 2^512, far from float64's overflow at 2^1024, before one log."""


@compiled
def _fused_loss_grad(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, bias: np.floating, grad: np.ndarray, block: int,
    gemv,
) -> float:  # pragma: no cover - compiled  # fmt: skip
    """The summed log-loss ``log(1 + e^z) - y z`` over the rows, ``z = X w + bias``, and its
    gradient added to ``grad`` (d weights, then the bias), in one pass over X.

    For each block of :data:`BLOCK` rows: ``z = X_b w`` (a BLAS gemv), the loss and the
    residual ``sigmoid(z) - y`` in one compiled loop, then ``X_b^T residual`` (a second gemv)
    while the block is in cache: X is read from memory once, where ``X @ w`` then
    ``X.T @ r`` read it twice. Stable for any z, like scikit-learn's Cython loss:
    ``log(1 + e^z) = max(z, 0) + log(1 + e^-|z|)``, one exp per row, and one log per block
    (the log of the product of the block's ``1 + e^-|z|``; a log per row cost more than the
    exp and the products together).
    """
    n, d = X.shape
    z = np.empty(block, X.dtype)
    local = np.empty(d, X.dtype)
    # gemv's Fortran arguments, all by reference: a row-major block (rows x d) is a
    # column-major (d x rows) A; z = A^T w, then local = A z
    trans, no_trans = np.array([ord("T")], np.uint8), np.array([ord("N")], np.uint8)
    dd, rows, one = np.array([d], np.int32), np.array([0], np.int32), np.array([1], np.int32)
    alpha, zero = np.array([1.0], X.dtype), np.array([0.0], X.dtype)
    loss, bias_grad = 0.0, 0.0
    for start in range(0, n, block):
        b = min(block, n - start)
        rows[0] = b
        Xb = X[start : start + b]
        gemv(trans.ctypes, dd.ctypes, rows.ctypes, alpha.ctypes, Xb.ctypes, dd.ctypes,
             w.ctypes, one.ctypes, zero.ctypes, z.ctypes, one.ctypes)  # fmt: skip
        product = 1.0
        for i in range(b):
            zi = z[i] + bias
            e = math.exp(-abs(zi))
            inverse = 1.0 / (1.0 + e)
            product *= 1.0 + e
            yi = y[start + i]
            loss += max(zi, 0.0) - yi * zi
            residual = (inverse if zi >= 0 else e * inverse) - yi
            bias_grad += residual
            z[i] = residual
        loss += math.log(product)
        gemv(no_trans.ctypes, dd.ctypes, rows.ctypes, alpha.ctypes, Xb.ctypes, dd.ctypes,
             z.ctypes, one.ctypes, zero.ctypes, local.ctypes, one.ctypes)  # fmt: skip
        # the block's gradient in X's dtype, summed in float64
        for f in range(d):
            grad[f] += local[f]
    grad[d] += bias_grad
    return loss


def _loss_gradient(X: np.ndarray, y: np.ndarray, wb: np.ndarray) -> tuple[float, np.ndarray]:
    """Summed log-loss of rows X with 0/1 labels y at weights-and-bias ``wb``, and its
    gradient (d + 1, float64); rows of either float dtype, never copied."""
    X = np.ascontiguousarray(X)
    grad = np.zeros(len(wb))
    w = np.ascontiguousarray(wb[:-1], dtype=X.dtype)
    # the bias in X's dtype: float32 rows take their exp in float32, not promoted to float64
    bias = X.dtype.type(wb[-1])
    loss = _fused_loss_grad(X, y, w, bias, grad, BLOCK, blas("gemv", X.dtype))
    return loss, grad


def _loss_grad(part: Part, wb: np.ndarray, positive, holdout: float, seed: int) -> tuple:
    """Map step: the partition's summed log-loss, its gradient (d + 1) and row count.

    Notes
    -----
    One compiled pass over the rows, two BLAS matrix-vector products per block of them,
    O(n d); returns d + 3 numbers whatever the partition size.
    """
    X, y = _rows(part, positive, holdout, seed)
    loss, grad = _loss_gradient(X, y, wb)
    return loss, grad, len(X)


def _loss_grad_hess(part: Part, wb: np.ndarray, positive, holdout: float, seed: int) -> tuple:
    """Map step for Newton: loss, gradient, and the Hessian ``[X 1]^T S [X 1]`` ((d+1)^2).

    Notes
    -----
    O(n d^2) flops for the Hessian, which is what each worker sends: (d + 1)^2 numbers.
    """
    loss, grad, n = _loss_grad(part, wb, positive, holdout, seed)
    from scipy.special import expit

    X, _ = _rows(part, positive, holdout, seed)
    z = X @ wb[:-1].astype(X.dtype, copy=False) + wb[-1]
    p = expit(z)
    s = (p * (1 - p)).astype(X.dtype)
    d = len(wb) - 1
    hess = np.empty((d + 1, d + 1))
    hess[:d, :d] = X.T @ (X * s[:, None])
    hess[:d, d] = hess[d, :d] = X.T @ s
    hess[d, d] = s.sum()
    return loss, grad, n, hess


def _admm_local(
    part: Part,
    targets: np.ndarray,
    starts: np.ndarray,
    rho: float,
    n: int,
    positive,
    holdout: float,
    seed: int,
) -> np.ndarray:
    """ADMM x-update on one partition: argmin_x f_i(x) + rho/2 ||x - v_i||^2.

    ``f_i`` is this partition's share of F / n; ``v_i = z - u_i`` is ``targets[part.index]``,
    and the previous ``x_i`` (``starts[part.index]``) warm-starts L-BFGS. No communication:
    the whole solve runs where the partition lives. Returns every partition's row of x, zero
    but this one's, so that the x of all partitions is a sum (blocks x (d + 1) numbers), which
    either execution can add up.
    """
    v, x0 = targets[part.index], starts[part.index]

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad, _ = _loss_grad(part, x, positive, holdout, seed)
        diff = x - v
        return loss / n + 0.5 * rho * diff @ diff, grad / n + rho * diff

    from scipy.optimize import minimize

    res = minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-10, "ftol": 64 * np.finfo(float).eps, "maxiter": 500},
    )
    out = np.zeros_like(starts)
    out[part.index] = res.x
    return out


def _metrics(part: Part, wb: np.ndarray, positive, holdout: float, seed: int, train: bool) -> tuple:
    """Loss, correct predictions, rows, and histograms of P(y=1) per class (for ROC AUC)."""
    from scipy.special import expit

    X, y = _rows(part, positive, holdout, seed, train)
    loss, _ = _loss_gradient(X, y, wb)  # its gradient unused: once per fit
    z = X @ wb[:-1].astype(X.dtype, copy=False) + wb[-1]
    correct = int(np.sum((z > 0) == (y > 0)))
    bins = np.minimum((expit(z) * AUC_BINS).astype(np.int64), AUC_BINS - 1)
    pos = np.bincount(bins[y > 0], minlength=AUC_BINS)
    neg = np.bincount(bins[y == 0], minlength=AUC_BINS)
    return loss, correct, len(X), pos, neg


def _describe(part: Part, ranges: bool) -> tuple[set, np.ndarray | None, np.ndarray | None]:
    """The partition's label values (and each column's min and max), for the input checks.

    A hash-based unique, O(n): ``np.unique`` sorts, which took 0.2 s of a 0.8 s fit.
    """
    import pandas as pd

    labels = set(pd.unique(part.y).tolist())
    if not ranges:
        return labels, None, None
    return labels, part.X.min(axis=0), part.X.max(axis=0)


def _describe_combine(a: tuple, b: tuple) -> tuple:
    if a[1] is None:
        return a[0] | b[0], None, None
    return a[0] | b[0], np.minimum(a[1], b[1]), np.maximum(a[2], b[2])


def _train_rows(part: Part, positive, holdout: float, seed: int) -> int:
    return len(_rows(part, positive, holdout, seed)[0])
