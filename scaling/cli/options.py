"""The command line's parser: every command and its options; each job's options come from its
config dataclass, one per field."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

from scaling.engines import ENGINES
from scaling.engines.defaults import DTYPES, MAX_FAILURES, STEP_TIMEOUT
from scaling.model.patterns import NETWORKS
from scaling.results import DEFAULT_STORE
from scaling.run.checkpoint import EVERY

DESCRIPTION = "scaling: run jobs on local, Ray, Dask or Spark workers and see how they scale."

GLOBAL_FIELDS = {"seed"}  # config fields set by a global option, not a job option


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _counts(what: str):
    def parse(text: str) -> list[int]:
        try:
            counts = [int(w.replace("_", "")) for w in text.split(",")]
        except ValueError:
            counts = []
        if not counts or min(counts) < 1:
            raise argparse.ArgumentTypeError(
                f"{what} must be positive integers like 2 or 1,2,4, got {text!r}"
            )
        return counts

    return parse


def _job_options(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One option per field of the job's config dataclass, defaulting to the field's default."""
    group = parser.add_argument_group(f"{config_cls.__name__} options")
    for f in dataclasses.fields(config_cls):
        if f.name in GLOBAL_FIELDS:
            continue
        kind = type(f.default) if isinstance(f.default, int | float) else str
        group.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=kind,
            default=f.default,
            help=f"(default: {f.default})",
        )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every command and its options; with ``only`` (the command about to run, or ``""`` for
    none), that command's options and the others by name and help alone: enough for
    ``scaling --help`` and for parsing one command, without every job's config imported."""
    parser = _Parser(prog="scaling", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.help)
        if only is None or only == name:
            command.options(sub, name)
    return parser


def _jobs(parser: argparse.ArgumentParser, verbs) -> argparse._SubParsersAction:
    return parser.add_subparsers(
        dest="job", required=True, parser_class=_Parser, metavar="{" + ",".join(verbs) + "}"
    )


def _run_or_sweep(sub: argparse.ArgumentParser, command: str) -> None:
    from jobs import JOBS

    jobs = _jobs(sub, JOBS)
    for name in JOBS:
        jobs.add_parser(name, help=f"{command} {name}", parents=[verb_options(command, name)])


def _submit(sub: argparse.ArgumentParser, command: str) -> None:
    from jobs import JOBS

    jobs = _jobs(sub, [*JOBS, "sweep"])
    for name in JOBS:
        jobs.add_parser(name, help=f"submit {name}", parents=[verb_options("run", name)])
    sweep = jobs.add_parser("sweep", help="submit sweep JOB [the sweep's options]")
    sweep_jobs = sweep.add_subparsers(
        dest="sweep_job", required=True, parser_class=_Parser, metavar="JOB"
    )
    for name in JOBS:
        sweep_jobs.add_parser(
            name, help=f"submit sweep {name}", parents=[verb_options("sweep", name)]
        )


def _results(sub: argparse.ArgumentParser, command: str) -> None:
    sub.add_argument(
        "paths", nargs="*", help=f"stores, sweep files or sweep ids (default: {DEFAULT_STORE})"
    )
    sub.add_argument(
        "--runs", action="store_true", help="every run's row (the table `scaling run` prints)"
    )


def _compare(sub: argparse.ArgumentParser, command: str) -> None:
    sub.add_argument("sweeps", nargs="+", help="sweep ids, sweep files or store directories")
    sub.add_argument("--report", help="report directory (default: results/compare-…)")
    sub.add_argument("--title", default="Scaling comparison")


def _explain(sub: argparse.ArgumentParser, command: str) -> None:
    for name, job_parser in _per_job(sub, command):
        job_parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
        _model_options(job_parser, name, "calibrations, for the predicted curve")


def _interview(sub: argparse.ArgumentParser, command: str) -> None:
    for name, job_parser in _per_job(sub, command):
        job_parser.add_argument(
            "--workers", type=int, default=16, help="the worker count answers talk about"
        )
        job_parser.add_argument("--question", type=int, metavar="N", help="only question N")
        job_parser.add_argument(
            "--json", action="store_true", help="each answer as JSON, its figures' sources too"
        )
        _model_options(job_parser, name, "runs and calibrations to cite")


def _calibrate(sub: argparse.ArgumentParser, command: str) -> None:
    sub.add_argument("engine", help="ray, dask or spark")
    sub.add_argument(
        "--workers",
        type=_counts("workers"),
        default=calibration_workers(),
        help="worker counts to measure at (default: 1 and this machine's cores)",
    )
    sub.add_argument("--repeat", type=int, default=15, help="calls per point (median)")
    sub.add_argument("--store", default=DEFAULT_STORE, help="where calibrations are kept")


def _predict(sub: argparse.ArgumentParser, command: str) -> None:
    for name, job_parser in _per_job(sub, command):
        job_parser.add_argument("--engine", default="ray", help="ray, dask or spark")
        job_parser.add_argument(
            "--workers",
            type=_counts("workers"),
            default=[2**i for i in range(11)],
            help="worker counts (default: 1,2,4,...,1024)",
        )
        job_parser.add_argument(
            "--network",
            default="loopback",
            choices=("loopback", *NETWORKS),
            help="links between the processes: loopback (this host's, measured) or a named "
            "network's assumed latency and bandwidth",
        )
        job_parser.add_argument("--alpha", type=float, help="latency per message, seconds")
        job_parser.add_argument("--beta", type=float, help="seconds per byte (1 / bandwidth)")
        job_parser.add_argument("--json", action="store_true", help="one JSON object per count")
        job_parser.add_argument("--png", help="also draw the curves to this PNG file")
        _model_options(job_parser, name, "calibrations and runs")


def _timeline(sub: argparse.ArgumentParser, command: str) -> None:
    sub.add_argument("run_id", help="a run id, as in the records (`scaling results --runs`)")
    sub.add_argument("--out", help="where to write it (default: timeline-RUN_ID.json, here)")
    sub.add_argument(
        "--store", default=DEFAULT_STORE, help=f"results store directory (default: {DEFAULT_STORE})"
    )


def _demo(sub: argparse.ArgumentParser, command: str) -> None:
    sub.add_argument("--rows", type=int, help="rows of every job (default: each job's own)")
    sub.add_argument("--engines", default=",".join(ENGINES))
    sub.add_argument("--out", default=DEFAULT_STORE, help="results store directory")


def _cluster(sub: argparse.ArgumentParser, command: str) -> None:
    actions = sub.add_subparsers(dest="action", required=True, parser_class=_Parser)
    start = actions.add_parser("start", help="start a cluster that keeps running, dashboard on")
    start.add_argument("engine", help="ray, dask or spark")
    start.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    start.add_argument("--join", metavar="ADDRESS", help="only add workers to this cluster")
    start.add_argument(
        "--host",
        metavar="ADDRESS",
        help="bind to this address of this machine, which other machines reach (default: "
        "loopback only); the engine's default ports",
    )
    start.add_argument(
        "--machines",
        type=int,
        metavar="N",
        help="a scale model of N worker machines and a head on this host (root): a network "
        "namespace each, its CPU share and link slowed by one factor D = (N + 1) C / cores",
    )
    start.add_argument(
        "--cores-per-machine", type=int, default=1, metavar="C", help="with --machines (1)"
    )
    start.add_argument(
        "--link",
        default="10gbit",
        metavar="RATE",
        help="with --machines: each machine's link, 100mbit, 1gbit, 10gbit, 25gbit or bits "
        "per second (default: 10gbit), shaped to RATE / D",
    )
    start.add_argument(
        "--dilation",
        type=float,
        default=1.0,
        metavar="D",
        help="with --machines: slow everything by at least D (a model that fits this host, "
        "slowed to check it against as many real workers)",
    )
    status = actions.add_parser("status", help="the clusters started here, live")
    status.add_argument("engine", nargs="?", help="one engine (default: all)")
    stop = actions.add_parser("stop", help="stop what `start` started, and nothing else")
    stop.add_argument("engine", help="ray, dask or spark")
    for fault, help_ in (
        ("partition", "take a machine of a scale model off the network (its link down)"),
        ("heal", "bring a partitioned machine's link up again"),
    ):
        faulty = actions.add_parser(fault, help=help_)
        faulty.add_argument("engine", help="ray, dask or spark: a cluster on --machines")
        faulty.add_argument("machine", help="m1 .. mN, or head")


def _jobs_command(sub: argparse.ArgumentParser, command: str) -> None:
    actions = sub.add_subparsers(dest="action", parser_class=_Parser)
    actions.add_parser("list", help="every submitted job (the default)")
    for action, help_ in (
        ("status", "one job's status"),
        ("logs", "its output so far"),
        ("stop", "stop it; what it wrote stays"),
        ("wait", "wait until it ends; exit 0 if it succeeded"),
    ):
        one = actions.add_parser(action, help=help_)
        one.add_argument("id")
        if action == "logs":
            one.add_argument("--follow", "-f", action="store_true", help="until the job ends")
        if action == "wait":
            one.add_argument("--timeout", type=float, help="seconds (default: no limit)")


class Command(NamedTuple):
    help: str
    options: Callable[[argparse.ArgumentParser, str], None]  # adds them to its parser
    module: str  # scaling.cli.MODULE defines cmd_NAME; imported when the command runs


COMMANDS = {
    "run": Command("run one job on one engine at one or more worker counts", _run_or_sweep, "runs"),
    "sweep": Command(
        "run a job over engines x workers x sizes, then report", _run_or_sweep, "runs"
    ),
    "submit": Command(
        "run (or `submit sweep JOB`: sweep) a job on a cluster of `scaling cluster start`, "
        "detached: prints its id",
        _submit,
        "clusters",
    ),
    "results": Command("list the sweeps in the results store", _results, "results"),
    "compare": Command("one report over one or more sweeps", _compare, "results"),
    "explain": Command("what one iteration of a job does and sends", _explain, "model"),
    "interview": Command(
        "model answers to the system-design questions about a job", _interview, "model"
    ),
    "calibrate": Command(
        "measure an engine's overhead, links and roofline (for predict)", _calibrate, "model"
    ),
    "predict": Command(
        "predicted time per iteration, speedup and efficiency (the cost model)", _predict, "model"
    ),
    "timeline": Command(
        "a run's per-task timeline as Chrome trace-event JSON (Perfetto)", _timeline, "results"
    ),
    "demo": Command("a strong-scaling sweep of every job on every engine", _demo, "runs"),
    "cluster": Command("start, show or stop a local cluster", _cluster, "clusters"),
    "jobs": Command("submitted jobs: list, status, logs, stop, wait", _jobs_command, "clusters"),
}
"""Every command, in the order ``scaling --help`` lists them: its help, what adds its options
to its parser, and the module that runs it (so that ``scaling --help`` imports none)."""


def verb_options(verb: str, name: str) -> argparse.ArgumentParser:
    """The options of ``scaling VERB NAME`` (``run`` or ``sweep``), as a parent parser: the
    same for the command itself and for ``submit``, which forwards them (:func:`forwarded`)."""
    from jobs import get_job

    p = argparse.ArgumentParser(add_help=False)
    _data_options(p)
    (_sweep_options if verb == "sweep" else _run_options)(p)
    _job_options(p, get_job(name).config)
    return p


def _per_job(
    sub: argparse.ArgumentParser, command: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``scaling COMMAND JOB``: each job's name and its parser."""
    from jobs import JOBS

    jobs = _jobs(sub, JOBS)
    for name in JOBS:
        yield name, jobs.add_parser(name, help=f"{command} {name}")


def _model_options(p: argparse.ArgumentParser, job: str, store: str) -> None:
    """What explain and predict describe: the data's shape, the job's options, the store."""
    from jobs import get_job

    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", default=DEFAULT_STORE, help=f"{store} (default: {DEFAULT_STORE})")
    _job_options(p, get_job(job).config)


def calibration_workers() -> list[int]:
    cores = os.cpu_count() or 1
    return [1, cores] if cores > 1 else [1]


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", type=int, default=16, help="synthetic features (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="data and algorithm seed (default: 0)")
    p.add_argument("--data", help="a .npy, .parquet or .csv file instead of synthetic data")
    p.add_argument("--label", help="label column of --data, left out of the features")
    p.add_argument("--dtype", default="float64", choices=DTYPES)
    p.add_argument(
        "--address",
        help="connect to a running cluster instead of starting one "
        "(ray://host:port or host:port, tcp://scheduler:port, spark://master:port)",
    )
    p.add_argument(
        "--cluster",
        metavar="ENGINE",
        help="the running cluster of `scaling cluster start ENGINE`: its engine, address and "
        "(by default) all its workers",
    )
    p.add_argument(
        "--out", default=DEFAULT_STORE, help=f"results store directory (default: {DEFAULT_STORE})"
    )
    p.add_argument(
        "--step-timeout",
        type=float,
        default=STEP_TIMEOUT,
        metavar="SECONDS",
        help="a step with no answer for this long fails the run: a frozen or unreachable "
        f"worker (default: {STEP_TIMEOUT:g})",
    )
    p.add_argument(
        "--max-failures",
        type=int,
        default=MAX_FAILURES,
        metavar="N",
        help="lost workers a run recovers from: replaced, their partitions re-read, the step "
        f"run again (default: {MAX_FAILURES}; 0 fails at the first)",
    )


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default="local", help=f"one of {', '.join(ENGINES)}")
    p.add_argument(
        "--workers",
        type=_counts("workers"),
        help="worker counts, e.g. 1,2: one run per count (default: 1, or a --cluster's workers)",
    )
    p.add_argument("--partitions", type=int, help="partitions (default: one per worker)")
    p.add_argument("--rows", type=int, default=100_000, help="synthetic rows (default: 100000)")
    p.add_argument("--json", action="store_true", help="print the records as JSON lines")
    p.add_argument(
        "--kill-worker-at",
        type=int,
        metavar="ITER",
        help="the failure drill: kill one worker after iteration ITER and record what the "
        "engine did (its detection time, the recovery or the failure, the work lost)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=EVERY,
        metavar="ROUNDS",
        help="a gang (gbdt, sgd's gangs) keeps its model every ROUNDS rounds (steps) in the "
        f"store: a member that dies costs the rounds since, not all (default: {EVERY}; 0: none)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="go on with an interrupted run from its last checkpoint, with the options it "
        "was started with (its id is in its error line, and in STORE/checkpoints/)",
    )


def _sweep_options(p: argparse.ArgumentParser) -> None:
    cores = os.cpu_count() or 1
    p.add_argument(
        "--engines",
        help=f"comma-separated (default: {','.join(ENGINES)}; with --emulate: dask)",
    )
    p.add_argument(
        "--workers",
        type=_counts("workers"),
        help=f"worker counts (default: 1..{cores}, this machine's cores, or a --cluster's)",
    )
    p.add_argument(
        "--rows",
        type=_counts("rows"),
        default=[100_000],
        help="data sizes: total rows (strong) or rows per worker (weak), e.g. "
        "100000,1000000 (default: 100000)",
    )
    p.add_argument(
        "--scaling",
        choices=("strong", "weak"),
        default="strong",
        help="strong: fixed total rows; weak: fixed rows per worker",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per point; the median is used")
    p.add_argument(
        "--no-baseline", action="store_true", help="skip the single-thread baseline (and so COST)"
    )
    p.add_argument("--report", help="report directory (default: the sweep's, results/SWEEP_ID)")
    p.add_argument(
        "--emulate",
        type=int,
        metavar="N",
        help="run the sweep on a scale model of N machines built around it, and removed after "
        "(`scaling cluster start ENGINE --machines N`; root); one engine",
    )
    p.add_argument(
        "--cores-per-machine", type=int, default=1, metavar="C", help="with --emulate (1)"
    )
    p.add_argument(
        "--link",
        default="10gbit",
        metavar="RATE",
        help="with --emulate: each machine's link (100mbit, 1gbit, 10gbit, 25gbit or bits/s)",
    )
