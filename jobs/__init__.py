"""The algorithms, each written once against the Engine contract and described to the rest of
the program by the Job contract (:class:`scaling.job.Job`).

Each job module (or package) defines ``JOB``, its :class:`~scaling.job.Job`, and imports its
heavy libraries (torch, XGBoost, LightGBM) only where it trains: building the CLI imports every
job's config, and ``scaling --help`` should not wait for torch.
"""

from __future__ import annotations

import importlib

from scaling.errors import UsageError
from scaling.job import Job

JOBS = {
    "kmeans": "jobs.kmeans",
    "logreg": "jobs.logreg",
    "sgd": "jobs.sgd",
    "gbdt": "jobs.gbdt",
}


def get_job(name: str) -> Job:
    """The job registered as ``name``."""
    if name not in JOBS:
        raise UsageError(f"unknown job {name!r}; choose one of {', '.join(JOBS)}")
    return importlib.import_module(JOBS[name]).JOB
