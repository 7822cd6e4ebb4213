"""XGBoost's collective for a gang: its tracker on the driver, its communicator on the members.

The members meet at the tracker (:class:`xgboost.tracker.RabitTracker`, on the driver at the
engine's rendezvous host), which wires them into a ring; inside
:func:`xgboost.collective.CommunicatorContext` every ``xgb.train`` all-reduces its histograms
with the others. Task ids fix the ranks (the tracker sorts them as strings: zero-padded).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import xgboost as xgb
from xgboost import collective
from xgboost.tracker import RabitTracker

from scaling.collectives import Backend
from scaling.engines.base import Engine, GangContext

_LOG = logging.getLogger("scaling.xgboost")


@ctypes.CFUNCTYPE(None, ctypes.c_char_p)
def _to_logging(message: bytes) -> None:
    _LOG.info(message.decode(errors="replace"))


def _log_this_thread() -> None:
    """Send this thread's XGBoost messages to :mod:`logging` instead of standard error.

    XGBoost's log callback is per thread, and Python's is registered only in the thread that
    imported it; a member runs in another (a Dask or Ray executor thread), where joining the
    communicator prints "Task ... got rank ..." to standard error whatever the verbosity.
    """
    xgb.core._LIB.XGBRegisterLogCallback(_to_logging)


class XGBoostBackend(Backend):
    """Tracker on the driver (:meth:`on_start`), communicator on each member."""

    def __init__(self) -> None:
        self._tracker: RabitTracker | None = None

    def __getstate__(self) -> dict:
        return {"_tracker": None}  # the tracker stays on the driver

    def on_start(self, engine: Engine, timeout: float) -> dict:
        self._timeout = int(timeout)
        self._tracker = RabitTracker(
            n_workers=engine.workers,
            host_ip=engine.rendezvous_host,
            port=0,
            sortby="task",
            timeout=self._timeout,
        )
        self._tracker.start()
        return self._tracker.worker_args()

    def on_shutdown(self, failed: bool) -> None:
        """Free the tracker's port and thread. After a failed gang the tracker has failed too
        (a member never came, or left); that error says less than the gang's, which is
        raised, and it is not waited for."""
        if self._tracker is None:
            return
        try:
            if not failed:
                self._tracker.wait_for(self._timeout)
        finally:
            with contextlib.suppress(xgb.core.XGBoostError):
                self._tracker.free()
            self._tracker = None

    @contextmanager
    def member(self, ctx: GangContext, started: dict, timeout: float) -> Iterator[dict]:
        """Yields the communicator's arguments: ``xgb.train`` inside the block is collective."""
        args = {**started, "dmlc_task_id": f"{ctx.rank:06d}", "dmlc_timeout": int(timeout)}
        _log_this_thread()
        with collective.CommunicatorContext(**args):
            yield args
