"""The algorithms, each written once against the Engine contract, one module per job.

A job module defines:

- ``NAME``; ``CONFIG``, its frozen validated config dataclass (one CLI option per field);
- ``fit(engine, ds, config, on_iteration)`` and the steps (map, combine, update) it is made of;
  ``ITERATION``, the name of the trace span of one iteration; ``explain(...)``, those steps;
- ``synthetic(rows, features, seed, config)``, its default data;
- ``baseline(source, config, dtype)``, the name of a strong single-thread implementation and its
  ``fit(n_iterations)`` (timed by the runner, for COST);
- ``rows_per_iteration(config, rows)``, what one iteration processes (for throughput);
- ``quality(result)`` and ``arrays(result)`` for run records;
- optionally ``weak_config(config, workers)``: the config of a weak-scaling point, for a job
  whose per-iteration work is set by its config rather than by the rows (SGD's batch).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from scaling.errors import UsageError

JOBS = {
    "kmeans": "jobs.kmeans",
    "logreg": "jobs.logreg",
    "sgd": "jobs.sgd",
    "gbdt": "jobs.gbdt",
}


def get_job(name: str) -> ModuleType:
    """The job module registered as ``name``."""
    if name not in JOBS:
        raise UsageError(f"unknown job {name!r}; choose one of {', '.join(JOBS)}")
    return importlib.import_module(JOBS[name])
