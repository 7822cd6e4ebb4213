"""Engines by name. Each framework is imported only by its own module, only when asked for;
the contract (:mod:`scaling.engines.base`, which loads NumPy) when one of its names is."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from scaling.errors import UsageError

if TYPE_CHECKING:
    from scaling.engines.base import Broadcast, Dataset, Engine, GangContext

ENGINES: dict[str, tuple[str, str, str | None]] = {
    # name: (module, class, pip extra that installs its framework)
    "local": ("scaling.engines.local", "LocalEngine", None),
    "ray": ("scaling.engines.ray", "RayEngine", "ray"),
    "dask": ("scaling.engines.dask", "DaskEngine", "dask"),
    "spark": ("scaling.engines.spark", "SparkEngine", "spark"),
}


def register(name: str, module: str, cls: str, extra: str | None = None) -> None:
    """Make ``module.cls`` available as engine ``name``."""
    ENGINES[name] = (module, cls, extra)


def engine_class(name: str) -> type[Engine]:
    """The Engine subclass registered as ``name``."""
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    module, cls, extra = ENGINES[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise ImportError(
            f"engine {name!r} needs its framework: pip install 'scaling[{extra}]' ({e})"
        ) from e


def make_engine(name: str, workers: int = 1, address: str | None = None, **options) -> Engine:
    """Start (or connect to) engine ``name`` with ``workers`` worker processes; ``options``:
    the engine's keyword options (``step_timeout``, ``max_failures``)."""
    return engine_class(name)(workers=workers, address=address, **options)


def __getattr__(name: str):
    """The contract's names, imported on first use: naming the engines (the command line's
    parser) does not load NumPy."""
    if name in ("Broadcast", "Dataset", "Engine", "GangContext"):
        return getattr(importlib.import_module("scaling.engines.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENGINES",
    "Broadcast",
    "Dataset",
    "Engine",
    "GangContext",
    "engine_class",
    "make_engine",
    "register",
]
