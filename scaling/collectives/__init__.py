"""How gang members form a library's collective, one module per library.

A :class:`Backend` (after Ray Train's ``Backend``) has a driver side and a member side:
:meth:`Backend.on_start` runs on the driver before the gang (XGBoost: start its tracker) and
returns what every member needs to join; :meth:`Backend.member` runs on each member, a context
that yields the library's communicator and tears it down on exit, even when training failed
(LightGBM: free its listening port); :meth:`Backend.on_shutdown` runs on the driver after the
gang, failed or not. :func:`run_gang` puts the three around :meth:`Engine.gang`.

Modules: :mod:`.tcp` (this project's own all-gather / all-to-all over TCP, and the kernel's
per-socket byte counters), :mod:`.torch` (a gloo process group), :mod:`.xgboost` (its tracker
and communicator), :mod:`.lightgbm` (its socket network's machine list). Each is the only
place its library's collective is set up.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaling.engines.base import Dataset, Engine, GangContext


class Backend(ABC):
    """Start a library's collective around a gang, and join it from each member.

    Instances travel to the members (they are pickled with the gang's arguments): keep
    driver-side state, such as a tracker, out of what pickles (``__getstate__``).
    """

    def on_start(self, engine: Engine, timeout: float) -> Any:
        """Driver, before the gang: start what the members meet at; return what they need."""
        return None

    def on_shutdown(self, failed: bool) -> None:  # noqa: B027 - optional hook
        """Driver, after the gang (``failed``: it raised): free what ``on_start`` started."""

    @abstractmethod
    def member(self, ctx: GangContext, started: Any, timeout: float) -> AbstractContextManager:
        """Member: a context that joins the collective, yields the communicator (or the
        library's parameters for it) and leaves it on exit."""


def run_gang(
    engine: Engine,
    ds: Dataset,
    backend: Backend,
    fn: Callable,
    *args: Any,
    timeout: float | None = None,
) -> list:
    """``engine.gang(ds, fn, backend, started, *args)`` between the backend's start and
    shutdown: each member calls ``fn(ctx, parts, backend, started, *args)`` and joins with
    ``backend.member(ctx, started, timeout)``.

    A member whose worker dies fails the gang; the engine replaces the worker, re-reads its
    partitions, and the gang starts again from the beginning, its collective set up afresh
    (up to the engine's ``max_failures``: :meth:`Engine.recovering`)."""

    def attempt() -> list:
        started = backend.on_start(engine, timeout or engine.gang_timeout)
        failed = True
        try:
            results = engine.gang(ds, fn, backend, started, *args, timeout=timeout)
            failed = False
            return results
        finally:
            backend.on_shutdown(failed)

    return engine.recovering("gang", attempt)
