"""What one run is: :class:`RunSpec`, one frozen, validated value (the job, its config and data,
where it runs, and how), and the fields every record of a run has, measured or failed."""

from __future__ import annotations

import dataclasses
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.data import Source
from scaling.engines.defaults import MAX_FAILURES, STEP_TIMEOUT
from scaling.errors import UsageError, check_choice, check_count
from scaling.job import Job
from scaling.measure.host import host_facts
from scaling.results import SCHEMA, new_sweep_id
from scaling.run.checkpoint import Checkpoints

MODES = ("strong", "weak")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One run: ``job`` with ``config`` on ``source``, on ``engine`` with ``workers`` workers.

    Parameters
    ----------
    address : str, optional
        A running cluster's (None: an embedded one, started for the run).
    partitions, dtype : int, str
        How the data is cut (default one partition per worker) and held on the workers.
    step_timeout, max_failures : float, int
        The engine's deadline for a call and the lost workers a run recovers from.
    kill_worker_at : int, optional
        The failure drill: a worker killed after that iteration (a gang's: once its
        checkpoint has that many rounds), and the record says what the engine did.
    checkpoints : Checkpoints, optional
        Where the run's gangs keep their state: removed when the run finishes, kept when it
        fails, to resume it from.
    run_id, sweep_id : str
        The run's id (its checkpoints' too) and its sweep's (new ones by default).
    mode : str
        ``strong`` or ``weak``: what the sweep it belongs to holds fixed.
    warmup : int
        First iterations recorded but left out of the median (JIT, first touch of caches).
    emulation : dict, optional
        The scale model the cluster at ``address`` runs on: its record shows times in the
        modelled cluster's time (:func:`scaling.present.figures.dilation`).
    """

    job: Job
    engine: str
    workers: int
    source: Source
    config: Any
    address: str | None = None
    partitions: int | None = None
    dtype: str = "float64"
    step_timeout: float = STEP_TIMEOUT
    max_failures: int = MAX_FAILURES
    kill_worker_at: int | None = None
    checkpoints: Checkpoints | None = None
    run_id: str = field(default_factory=new_run_id)
    sweep_id: str = field(default_factory=new_sweep_id)
    mode: str = "strong"
    warmup: int = 1
    emulation: dict | None = None  # the scale model it runs on (ScaleModel.describe)

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, MODES)
        check_count("warmup", self.warmup, minimum=0)

    def check_drill(self) -> None:
        """The failure drill needs a loop on the driver or a gang that keeps checkpoints
        (checked when the run starts: its checkpoints may be set after the rest)."""
        if self.kill_worker_at is not None and self.gang and not self.resumable:
            raise UsageError(
                "--kill-worker-at kills a worker between two steps of the driver's loop, or in "
                "a gang once its checkpoint has that many rounds; this run's iterations run "
                f"inside one gang call ({self.execution}) that keeps no checkpoints: use "
                "--execution driver, or a gang with checkpoints (gbdt; sgd's gangs) and "
                "--checkpoint-every N"
            )

    @property
    def execution(self) -> str:
        return self.job.execution(self.config)

    @property
    def gang(self) -> bool:
        """Whether its iterations run inside one gang call."""
        return self.execution != "driver"

    @property
    def resumable(self) -> bool:
        """Whether its gang keeps checkpoints here and goes on from them."""
        return self.checkpoints is not None and self.job.resumable(self.config)

    @property
    def engine_options(self) -> dict:
        return {"step_timeout": self.step_timeout, "max_failures": self.max_failures}

    def identity(self, started: str) -> dict:
        """The fields every record of this run has, measured or failed."""
        return {
            "schema": SCHEMA,
            "sweep_id": self.sweep_id,
            "run_id": self.run_id,
            "started_at": started,
            "mode": self.mode,
            "job": self.job.name,
            "engine": self.engine,
            "execution": self.execution,
            "job_id": os.environ.get("SCALING_JOB_ID"),  # a run of `scaling submit`
            "workers": self.workers,
            "rows": self.source.rows,
            "features": self.source.features,
            "config": config_dict(self.config),
            "host": host_facts(),
        } | ({"emulation": self.emulation} if self.emulation else {})


def config_dict(config: object) -> dict:
    """A config dataclass as JSON-able values (arrays described by their shape)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = f"array{list(value.shape)}" if isinstance(value, np.ndarray) else value
    return out
