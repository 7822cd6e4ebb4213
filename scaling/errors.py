"""Errors a user can act on.

Every message says what was wrong and how to fix it; the CLI prints it on one line and
exits with status 2. Anything else escaping is a bug and keeps its traceback.
"""


class ScalingError(Exception):
    """Base class of the errors the CLI reports without a traceback."""


class UsageError(ScalingError, ValueError):
    """A bad argument or configuration value."""


class DataError(ScalingError, ValueError):
    """Input data that is missing, malformed or not finite."""


class EngineError(ScalingError, RuntimeError):
    """A cluster that cannot be reached, or workers that failed or died during a call."""
