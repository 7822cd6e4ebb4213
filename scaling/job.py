"""The Job contract: what the runner, the CLI, the report and ``explain`` know of a job.

A job is an algorithm written once against the Engine contract. Everything outside the job
(progress bars, run records, tables, plots, ``scaling explain``) reads it through this class,
never by guessing at its module or its result: the job says how many iterations a run does,
what one iteration is called in the trace, what its throughput counts, which quality number
heads a table, what its steps are and what its single-thread baseline is.

Subclasses set the class attributes and implement the abstract methods; the others have
defaults. A job is generic over its config and its result (``Job[KMeansConfig, KMeansResult]``),
so that every method says what it takes and gives. A job's package should import its heavy
libraries (torch, XGBoost) only inside ``fit``, ``baseline`` and the steps, so that ``scaling
--help`` and ``scaling explain`` stay fast (see :mod:`jobs`). What one run carries into
``fit`` besides the engine, the data and the config is a :class:`RunContext`.

Adding a job: one package under ``jobs/`` (its config, kernels, solver, declared steps and,
optionally, an ``interview`` module of its own questions), one line in :data:`jobs.JOBS`, and a
test against its single-machine reference; :func:`scaling.testing.check_job` checks the rest of
the contract, as scikit-learn's ``check_estimator`` does (``docs/ARCHITECTURE.md``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from scaling.data import Source
    from scaling.engines import Dataset, Engine
    from scaling.model.steps import Step
    from scaling.run.checkpoint import Checkpoints

ConfigT = TypeVar("ConfigT")
ResultT = TypeVar("ResultT")

OnIteration = Callable[[int, float], None]
"""``on_iteration(iteration, measure)``: called after each iteration (gang jobs: after training,
once per iteration the workers measured)."""


@dataclass(frozen=True)
class Baseline:
    """A strong single-thread implementation of the job, for COST.

    ``fit(n)`` runs it for at most ``n`` iterations on the data it was made for and returns the
    fitted object (with ``n_iter_`` where it may stop early); the runner times it on one
    thread by difference, so that set-up is not counted (``runner.per_iteration_by_difference``).
    """

    name: str
    fit: Callable[[int], object]


@dataclass(frozen=True)
class RunContext:
    """What one run carries into :meth:`Job.fit`, besides the engine, the data and the config.

    Attributes
    ----------
    on_iteration : OnIteration or None
        Told of each iteration: the run's progress bar, and the failure drill's kill.
    checkpoints : Checkpoints or None
        Where the run's gangs keep their latest state (:mod:`scaling.run.checkpoint`); None:
        a gang whose member dies starts again from its first round.

    Notes
    -----
    The engine keeps its own record of its calls (``engine.trace``): it is the engine's
    measurement, not the run's state.
    """

    on_iteration: OnIteration | None = None
    checkpoints: Checkpoints | None = None

    def progress(self, iteration: int, measure: float) -> None:
        """Tell ``on_iteration`` of an iteration, where there is one."""
        if self.on_iteration is not None:
            self.on_iteration(iteration, measure)


NO_CONTEXT = RunContext()
"""A run with no progress, no drill and no checkpoints (a test's, a notebook's own fit)."""


class Job(ABC, Generic[ConfigT, ResultT]):
    """One algorithm: its config, its fit, its steps, and how its runs are measured.

    Class attributes
    ----------------
    name : str
        The name users type (``scaling run NAME``).
    config : type
        Its frozen, validated config dataclass; one CLI option per field.
    demo_config : object
        The config ``scaling demo`` runs.
    demo_rows : int
        The rows ``scaling demo`` strong-scales: enough that the algorithm's character
        shows, few enough that the whole demo stays within minutes on 2 cores.
    iteration : str
        The trace span of one iteration (what run records time).
    unit : str
        What one iteration processes, for throughput: ``"rows"``, ``"samples"``, ...
        Throughput is ``rows_per_iteration(config, rows) / seconds per iteration`` in
        ``unit`` per second.
    headline : str
        The key of :meth:`quality` that tables show.
    explain_note : str
        A paragraph under ``scaling explain``: what the steps mean for scaling.
    variants : dict
        Its decompositions (execution styles, solvers, strategies, modes), by name, as the
        config options that choose them (``{}``: the default): what ``benchmarks/costmodel.py``
        and ``scaling interview`` compare.
    """

    name: ClassVar[str]
    config: ClassVar[type]  # type[ConfigT]: a ClassVar cannot name a type variable
    demo_config: ClassVar[Any]  # a ConfigT
    demo_rows: ClassVar[int] = 500_000
    iteration: ClassVar[str]
    unit: ClassVar[str] = "rows"
    headline: ClassVar[str]
    explain_note: ClassVar[str] = ""
    variants: ClassVar[dict[str, dict]] = {"driver": {}, "allreduce": {"execution": "allreduce"}}

    @abstractmethod
    def fit(
        self, engine: Engine, ds: Dataset, config: ConfigT, context: RunContext = NO_CONTEXT
    ) -> ResultT:
        """Fit on a dataset cached on ``engine``; each iteration a trace span ``iteration``,
        told to ``context.on_iteration``."""

    @abstractmethod
    def synthetic(self, rows: int, features: int, seed: int, config: ConfigT) -> Source:
        """The data ``scaling run/sweep`` use without ``--data``."""

    @abstractmethod
    def baseline(self, source: Source, config: ConfigT, dtype: str = "float64") -> Baseline:
        """The strong single-thread implementation on ``source`` (for COST)."""

    @abstractmethod
    def explain(self, rows: int, features: int, workers: int, config: ConfigT) -> list[Step]:
        """One iteration as the named steps ``fit`` runs (``scaling explain``)."""

    @abstractmethod
    def quality(self, result: ResultT) -> dict:
        """What a run record reports about the fit (JSON values; ``headline`` among them)."""

    @abstractmethod
    def iterations(self, config: ConfigT) -> int:
        """The most iterations a run of ``config`` does (what a progress bar counts)."""

    @abstractmethod
    def timed(self, config: ConfigT, iterations: int) -> ConfigT:
        """``config`` as the cost model times it on a sample (:mod:`scaling.run.sample`):
        ``iterations`` iterations, none stopped early, and nothing before them that the
        timing does not need (k-means: a random init)."""

    @abstractmethod
    def parameters(self, features: int, config: ConfigT) -> int:
        """The numbers the fitted model holds (centres, coefficients, weights, tree nodes)."""

    def resumable(self, config: ConfigT) -> bool:
        """Whether its gang keeps checkpoints and goes on from them
        (:mod:`scaling.run.checkpoint`); default not."""
        return False

    def rows_per_iteration(self, config: ConfigT, rows: int) -> int:
        """Units (see ``unit``) one iteration processes; default: every row."""
        return rows

    def partition(self, rows: int, features: int, workers: int, config: ConfigT) -> tuple[int, int]:
        """The rows and features one of ``workers`` holds, whose iteration the cost model times
        on a sample (:mod:`scaling.run.sample`); default: its share of the rows, every feature."""
        return -(-rows // workers), features

    def sample_partitions(self, config: ConfigT, workers: int) -> int:
        """Partitions that a sample of one worker's share at ``workers`` runs side by side on
        its one core, its compute then divided by them (:mod:`scaling.run.sample`). Default 1:
        a worker's work per iteration is set by its share alone. A job whose work also depends
        on how many share the problem (ADMM's local solves, each pulled toward a consensus of
        all of them) runs all ``workers`` of them."""
        return 1

    def execution(self, config: ConfigT) -> str:
        """How an iteration runs: ``driver`` (the MapReduce style: the driver holds the loop and
        makes an engine call per step) or ``allreduce`` (a gang of workers holds the loop and
        combines among themselves), or the name of a gang's own scheme (SGD's ``parameter
        server``): anything but ``driver`` runs inside one gang call. Default: the config's
        ``execution``, else ``driver``."""
        return getattr(config, "execution", "driver")

    def weak_config(self, config: ConfigT, workers: int) -> ConfigT:
        """The config of a weak-scaling point at ``workers``: the default keeps it (the rows
        grow with p); a job whose per-iteration work is set by its config grows that too."""
        return config

    def arrays(self, result: ResultT) -> dict[str, np.ndarray]:
        """Arrays a run saves beside its record (centres, coefficients); default none."""
        return {}

    def __repr__(self) -> str:
        return f"<job {self.name}>"
