"""Steps more than one job uses."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from scaling.data import Part
from scaling.engines import Dataset, Engine


def _labels(part: Part) -> set:
    import pandas as pd

    return set(pd.unique(part.y).tolist())


def _union(a: set, b: set) -> set:
    return a | b


def label_classes(engine: Engine, ds: Dataset) -> np.ndarray:
    """The sorted distinct labels of a labelled dataset: one map-reduce of label sets."""
    return np.array(sorted(engine.map_reduce(ds, _labels, _union)))


def compiled(kernel: Callable) -> Callable:
    """``numba.njit(cache=True, nogil=True)`` applied at the kernel's first call: numba (a
    third of a second to import) loads where the kernel runs, not wherever a job's module is
    imported to read its options (``scaling --help``, ``explain``, ``predict``)."""
    jitted = None

    @functools.wraps(kernel)
    def call(*args):
        nonlocal jitted
        if jitted is None:
            import numba

            jitted = numba.njit(cache=True, nogil=True)(kernel)
        return jitted(*args)

    return call


_BLAS_ARGUMENTS = {"gemm": 13, "gemv": 11}


@functools.cache
def blas(routine: str, dtype: np.dtype) -> Callable:
    """BLAS's ``routine`` ("gemm" or "gemv") for ``dtype`` (scipy's, the library NumPy's
    products use too), as a C function that a :func:`compiled` kernel calls with Fortran's
    arguments, all by reference: no Python call between the blocks of rows it walks."""
    import ctypes

    from numba.extending import get_cython_function_address

    name = ("d" if np.dtype(dtype) == np.float64 else "s") + routine
    address = get_cython_function_address("scipy.linalg.cython_blas", name)
    return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * _BLAS_ARGUMENTS[routine])(address)
