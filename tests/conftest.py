"""Real local clusters, started once per (engine, workers) and shared by the tests that use them.

Pytest groups the tests by the session-scoped ``engine`` parameter and closes one cluster
before starting the next, so only one Ray instance or SparkContext exists at a time.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from scaling.engines import ENGINES, make_engine

ENGINE_NAMES = list(ENGINES)


@pytest.fixture(
    scope="session",
    # The clusters at 2 workers only: every engine runs the same worker functions
    # (scaling/engines/worker.py), so a cluster's 1-worker runs test nothing that its 2-worker
    # runs and the local engine's 1-worker runs do not (and each cluster's set-up is dear).
    params=[(e, w) for e in ENGINE_NAMES for w in ((1, 2) if e == "local" else (2,))],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def engine(request):
    """A real engine: every registered engine at 2 workers, and the local one at 1 too."""
    name, workers = request.param
    with make_engine(name, workers) as eng:
        yield eng


@pytest.fixture
def fresh_trace(engine):
    engine.trace.reset()
    return engine.trace
