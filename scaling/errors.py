"""Errors a user can act on.

Every message says what was wrong and how to fix it; the CLI prints it on one line and
exits with status 2. Anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


class ScalingError(Exception):
    """Base class of the errors the CLI reports without a traceback."""


class UsageError(ScalingError, ValueError):
    """A bad argument or configuration value."""


class DataError(ScalingError, ValueError):
    """Input data that is missing, malformed or not finite."""


class EngineError(ScalingError, RuntimeError):
    """A cluster that cannot be reached, or workers that failed or died during a call."""


class LostWorker(EngineError):
    """A worker process died during a call: its cached partitions are gone with it."""


class ClusterLost(EngineError):
    """The cluster a run connected to went away under it: stopped, killed or unreachable."""


class StepTimeout(EngineError):
    """A call got no answer within the engine's step deadline: a worker frozen or
    unreachable."""


class GangTimeout(EngineError):
    """A gang whose members did not all finish within its timeout: one died, never joined or
    is stuck (:meth:`Engine.gang <scaling.engines.base.Engine.gang>` says which, where its
    rendezvous saw it)."""


class StoreError(ScalingError, OSError):
    """A result that could not be written (a full disk, a directory that cannot be written);
    what was written before it is intact."""


def check_choice(name: str, value: Any, allowed: Collection) -> None:
    """A config value that must be one of ``allowed``."""
    if value not in allowed:
        raise UsageError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def check_count(name: str, value: Any, minimum: int = 1) -> None:
    """A config value that must be an integer >= ``minimum``."""
    if not isinstance(value, int) or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}")


def first_line(e: BaseException) -> str:
    """The first non-blank line of an exception's message (at most 300 characters)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else "(no message)"
