"""What a user may set for every engine, and its defaults. Nothing heavy is imported here: the
command line's parser reads these without loading an engine (or NumPy)."""

DTYPES = ("float64", "float32")
"""The element types a dataset may be cached in."""

STEP_TIMEOUT = 300.0
"""Seconds an engine call (a load, a map, a map-reduce, a broadcast) may go without an answer
before it fails (:class:`~scaling.errors.StepTimeout`): a frozen or unreachable worker ends a
run within it instead of hanging it. A gang has its own deadline (``gang_timeout``, or the
job's ``--timeout``)."""

MAX_FAILURES = 1
"""Lost workers a run recovers from (replaced, their partitions re-read, the call retried)
before a further loss fails it."""

WATCH = 2.0
"""Seconds between the checks, while a call waits, that a cluster at ``--address`` still
answers: a Spark job whose master and workers are gone waits for executors for ever, and Ray's
driver retries its GCS for 60 s, then ends the process. The first check is after ``WATCH``
seconds: a call that answers sooner pays nothing."""
