"""The failure drill (``--kill-worker-at``): a worker killed after an iteration of a driver
loop, or, in a gang, once its checkpoint has that many rounds; the record then says what the
engine did."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from scaling.engines import Engine
from scaling.errors import UsageError
from scaling.job import OnIteration
from scaling.run.checkpoint import Checkpoints


def drill(engine: Engine, ds, at: int, then: OnIteration | None) -> OnIteration:
    """``then``, and after iteration ``at`` (counted from 1) a worker killed, once."""
    if at < 1:
        raise UsageError(f"--kill-worker-at counts iterations from 1, got {at}")
    done = []

    def on_iteration(i: int, measure: float) -> None:
        if then is not None:
            then(i, measure)
        if i + 1 >= at and not done:
            done.append(engine.kill_worker(ds))

    return on_iteration


@contextlib.contextmanager
def gang_drill(engine: Engine, ds, at: int, checkpoints: Checkpoints) -> Iterator[None]:
    """While the block runs (a gang), kill a worker once, when the gang's checkpoint has
    ``at`` rounds or more: the driver cannot see a gang's rounds until it ends, but it can
    see its checkpoints."""
    if at < 1:
        raise UsageError(f"--kill-worker-at counts rounds from 1, got {at}")
    pid, stop = engine.worker_pid(ds, gang=True), threading.Event()

    def watch() -> None:
        while not stop.wait(0.005):
            latest = checkpoints.latest()
            if latest is not None and latest[0] >= at:
                engine.kill_worker(ds, pid)
                return

    watcher = threading.Thread(target=watch, name="scaling-drill", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
