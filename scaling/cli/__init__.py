"""scaling: run jobs on local, Ray, Dask or Spark workers and see how they scale.

Commands: ``run`` (one job, one engine, some worker counts), ``sweep`` (engines x workers x
sizes, strong or weak scaling, with a report), ``results`` (the sweeps in the store),
``compare`` (one report over several sweeps), ``explain`` (one iteration's steps),
``calibrate`` and ``predict`` (the cost model), ``timeline`` (a run's tasks for Perfetto),
``demo``; ``cluster start|status|stop`` (a local cluster that keeps running), ``submit`` (a run
on it, detached) and ``jobs`` (list, status, logs, stop, wait). Errors a user can fix print
one line, ``scaling: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from scaling.data import Source, open_file
from scaling.engines import ENGINES
from scaling.engines.base import DTYPES, MAX_FAILURES, STEP_TIMEOUT
from scaling.errors import ScalingError, UsageError
from scaling.model.costmodel import NETWORKS
from scaling.results import DEFAULT_STORE
from scaling.run.checkpoint import EVERY

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


def build_parser() -> argparse.ArgumentParser:
    from jobs import JOBS, get_job

    parser = _Parser(prog="scaling", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command, help_ in (
        ("run", "run one job on one engine at one or more worker counts"),
        ("sweep", "run a job over engines x workers x sizes, then report"),
        (
            "submit",
            "run (or `submit sweep JOB`: sweep) a job on a cluster of `scaling cluster start`, "
            "detached: prints its id",
        ),
    ):
        sub = commands.add_parser(command, help=help_)
        verbs = [*JOBS, "sweep"] if command == "submit" else JOBS
        jobs = sub.add_subparsers(
            dest="job", required=True, parser_class=_Parser, metavar="{" + ",".join(verbs) + "}"
        )
        for name in JOBS:
            verb = "run" if command == "submit" else command
            jobs.add_parser(name, help=f"{command} {name}", parents=[_verb_options(verb, name)])
        if command == "submit":
            sweep = jobs.add_parser("sweep", help="submit sweep JOB [the sweep's options]")
            sweep_jobs = sweep.add_subparsers(
                dest="sweep_job", required=True, parser_class=_Parser, metavar="JOB"
            )
            for name in JOBS:
                sweep_jobs.add_parser(
                    name, help=f"submit sweep {name}", parents=[_verb_options("sweep", name)]
                )

    results = commands.add_parser("results", help="list the sweeps in the results store")
    results.add_argument(
        "paths", nargs="*", help=f"stores, sweep files or sweep ids (default: {DEFAULT_STORE})"
    )
    results.add_argument(
        "--runs", action="store_true", help="every run's row (the table `scaling run` prints)"
    )

    compare = commands.add_parser("compare", help="one report over one or more sweeps")
    compare.add_argument("sweeps", nargs="+", help="sweep ids, sweep files or store directories")
    compare.add_argument("--report", help="report directory (default: results/compare-…)")
    compare.add_argument("--title", default="Scaling comparison")

    for name, job_parser in _per_job(
        commands, "explain", "what one iteration of a job does and sends"
    ):
        job_parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
        _model_options(job_parser, get_job(name).config, "calibrations, for the predicted curve")

    for name, job_parser in _per_job(
        commands, "interview", "model answers to the system-design questions about a job"
    ):
        job_parser.add_argument(
            "--workers", type=int, default=16, help="the worker count answers talk about"
        )
        job_parser.add_argument("--question", type=int, metavar="N", help="only question N")
        job_parser.add_argument(
            "--json", action="store_true", help="each answer as JSON, its figures' sources too"
        )
        _model_options(job_parser, get_job(name).config, "runs and calibrations to cite")

    calibrate = commands.add_parser(
        "calibrate", help="measure an engine's overhead, links and roofline (for predict)"
    )
    calibrate.add_argument("engine", help="ray, dask or spark")
    calibrate.add_argument(
        "--workers",
        type=_counts("workers"),
        default=_calibration_workers(),
        help="worker counts to measure at (default: 1 and this machine's cores)",
    )
    calibrate.add_argument("--repeat", type=int, default=15, help="calls per point (median)")
    calibrate.add_argument("--store", default=DEFAULT_STORE, help="where calibrations are kept")

    for name, job_parser in _per_job(
        commands, "predict", "predicted time per iteration, speedup and efficiency (the cost model)"
    ):
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
        _model_options(job_parser, get_job(name).config, "calibrations and runs")

    timeline = commands.add_parser(
        "timeline", help="a run's per-task timeline as Chrome trace-event JSON (Perfetto)"
    )
    timeline.add_argument("run_id", help="a run id, as in the records (`scaling results --runs`)")
    timeline.add_argument("--out", help="where to write it (default: timeline-RUN_ID.json, here)")
    timeline.add_argument(
        "--store", default=DEFAULT_STORE, help=f"results store directory (default: {DEFAULT_STORE})"
    )

    demo = commands.add_parser("demo", help="a strong-scaling sweep of every job on every engine")
    demo.add_argument("--rows", type=int, help="rows of every job (default: each job's own)")
    demo.add_argument("--engines", default=",".join(ENGINES))
    demo.add_argument("--out", default=DEFAULT_STORE, help="results store directory")

    cluster = commands.add_parser("cluster", help="start, show or stop a local cluster")
    actions = cluster.add_subparsers(dest="action", required=True, parser_class=_Parser)
    start = actions.add_parser("start", help="start a cluster that keeps running, dashboard on")
    start.add_argument("engine", help="ray, dask or spark")
    start.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    start.add_argument("--join", metavar="ADDRESS", help="only add workers to this cluster")
    status = actions.add_parser("status", help="the clusters started here, live")
    status.add_argument("engine", nargs="?", help="one engine (default: all)")
    stop = actions.add_parser("stop", help="stop what `start` started, and nothing else")
    stop.add_argument("engine", help="ray, dask or spark")

    jobs_parser = commands.add_parser("jobs", help="submitted jobs: list, status, logs, stop, wait")
    actions = jobs_parser.add_subparsers(dest="action", parser_class=_Parser)
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
    return parser


def _verb_options(verb: str, name: str) -> argparse.ArgumentParser:
    """The options of ``scaling VERB NAME`` (``run`` or ``sweep``), as a parent parser: the
    same for the command itself and for ``submit``, which forwards them (:func:`_forwarded`)."""
    from jobs import get_job

    p = argparse.ArgumentParser(add_help=False)
    _data_options(p)
    (_sweep_options if verb == "sweep" else _run_options)(p)
    _job_options(p, get_job(name).config)
    return p


def _per_job(commands, command: str, help: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``scaling COMMAND JOB``: the command, then each job's name and its parser."""
    from jobs import JOBS

    parser = commands.add_parser(command, help=help)
    jobs = parser.add_subparsers(
        dest="job", required=True, parser_class=_Parser, metavar="{" + ",".join(JOBS) + "}"
    )
    for name in JOBS:
        yield name, jobs.add_parser(name, help=f"{command} {name}")


def _model_options(p: argparse.ArgumentParser, config_cls: type, store: str) -> None:
    """What explain and predict describe: the data's shape, the job's options, the store."""
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", default=DEFAULT_STORE, help=f"{store} (default: {DEFAULT_STORE})")
    _job_options(p, config_cls)


def _calibration_workers() -> list[int]:
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


def _engine_options(args: argparse.Namespace) -> dict:
    return {"step_timeout": args.step_timeout, "max_failures": args.max_failures}


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
        default=",".join(ENGINES),
        help=f"comma-separated (default: {','.join(ENGINES)})",
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


def _source(job, args: argparse.Namespace, rows: int, config: object) -> Source:
    if args.data:
        return open_file(args.data, args.label)
    if args.label:
        raise UsageError("--label goes with --data")
    return job.synthetic(rows, args.features, args.seed, config)


def _config(job, args: argparse.Namespace) -> object:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(job.config)}
    return job.config(**values)


def _engines(text: str) -> tuple[str, ...]:
    from scaling.engines import engine_class

    names = tuple(e for e in text.split(",") if e)
    for name in names:
        engine_class(name)  # unknown engine or missing framework: fail before any work
    return names


def _on_cluster(args: argparse.Namespace, engine_attr: str):
    """``--cluster ENGINE`` (or the ``--address`` of a cluster started here): that cluster's
    engine, address and workers (asking for more workers than it has fails here, at once,
    with the number it has). Returns the cluster, or None for an embedded one or one
    started elsewhere."""
    from scaling.run import cluster

    if args.cluster and args.address:
        raise UsageError("--cluster says the address; leave out --address")
    if args.cluster:
        found = cluster.running(args.cluster)
        if found is None:
            raise UsageError(
                f"no {args.cluster} cluster started here is running; "
                f"`scaling cluster start {args.cluster}` starts one"
            )
    else:  # an --address of a cluster started here is that cluster
        found = cluster.find(args.address) if args.address else None
    if found is None:
        if args.workers is None:
            args.workers = [1] if engine_attr == "engine" else _all_cores()
        return None
    has = found.live_workers() or found.workers
    if args.workers is None:
        args.workers = [has] if engine_attr == "engine" else list(range(1, has + 1))
    if max(args.workers) > has:
        raise UsageError(
            f"the {found.engine} cluster at {found.address} has {has} workers; "
            f"ask for at most {has} (or `scaling cluster start {found.engine} --join "
            f"{found.address} --workers N` adds more)"
        )
    setattr(args, engine_attr, found.engine)
    args.address = found.address
    return found


def _say_dashboards(found) -> None:
    """Where to watch a run on a cluster of `scaling cluster start` while it runs."""
    if found is not None and found.dashboards:
        print(f"watch it on {' '.join(found.dashboards.values())}", file=sys.stderr)


def _all_cores() -> list[int]:
    return list(range(1, (os.cpu_count() or 1) + 1))


def cmd_run(args: argparse.Namespace) -> int:
    from jobs import get_job
    from scaling.present.text import failure_lines, print_table
    from scaling.results import append_record, new_sweep_id, sweep_file
    from scaling.run.checkpoint import of_run
    from scaling.run.runner import config_dict, new_run_id, run_with_progress

    job = get_job(args.job)
    _say_dashboards(_on_cluster(args, "engine"))
    _engines(args.engine)
    config = _config(job, args)
    source = _source(job, args, args.rows, config)
    _preflight(args, [args.engine], source.rows, source.features)
    if args.checkpoint_every < 0:
        raise UsageError(f"--checkpoint-every takes rounds >= 0, got {args.checkpoint_every}")
    if args.resume and len(args.workers) > 1:
        raise UsageError("--resume goes on with one run: give one worker count (--workers N)")
    sweep_id, records = new_sweep_id(), []
    for workers in args.workers:
        run_id = args.resume or new_run_id()
        checkpoints = None
        if args.checkpoint_every or args.resume:
            what = {"job": job.name, "config": config_dict(config), "data": source.describe()}
            what["dtype"] = args.dtype
            every = args.checkpoint_every or EVERY
            checkpoints = of_run(args.out, run_id, what, every, resume=bool(args.resume))
        try:
            run = run_with_progress(
                job,
                args.engine,
                workers,
                source,
                config,
                address=args.address,
                partitions=args.partitions,
                dtype=args.dtype,
                sweep_id=sweep_id,
                engine_options=_engine_options(args),
                kill_worker_at=args.kill_worker_at,
                run_id=run_id,
                checkpoints=checkpoints,
            )
        except ScalingError as e:
            if checkpoints and (kept := checkpoints.latest()):
                e.args = (
                    f"{e}; its checkpoint after round {kept[0]} is kept: add --resume {run_id} "
                    "to go on from it",
                )
            raise
        records.append(append_record(args.out, run.record, run.arrays, run.files))
        if args.json:
            print(json.dumps(records[-1], sort_keys=True, default=str), flush=True)
    if not args.json:
        print_table(records)
        for line in failure_lines(records):
            print(line)
        print(f"\nrecords: {sweep_file(args.out, sweep_id)}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from jobs import get_job
    from scaling.run.runner import SweepPlan

    job = get_job(args.job)
    _say_dashboards(_on_cluster(args, "engines"))
    config = _config(job, args)
    data = _source(job, args, 1, config) if args.data else None
    plan = SweepPlan(
        job=job,
        config=config,
        engines=_engines(args.engines),
        workers=tuple(args.workers),
        sizes=(data.rows,) if data else tuple(args.rows),
        mode=args.scaling,
        features=args.features,
        seed=args.seed,
        repeat=args.repeat,
        dtype=args.dtype,
        address=args.address,
        data=data,
        baseline=not args.no_baseline,
        engine_options=tuple(_engine_options(args).items()),
    )
    most = max(plan.sizes) * (max(plan.workers) if plan.mode == "weak" else 1)
    _preflight(args, plan.engines, data.rows if data else most, plan.features)
    return _sweep_and_report(plan, args.out, args.report)[0]


def _preflight(args: argparse.Namespace, engines, rows: int, features: int) -> None:
    """Before any work: the store (and report directory) writable, the largest data in
    memory, the most workers on this machine's cores (:mod:`scaling.run.preflight`)."""
    from scaling.run import preflight

    preflight.writable(args.out)
    if getattr(args, "report", None):
        preflight.writable(args.report, "--report")
    embedded = args.address is None
    preflight.fits_in_memory(rows, features, args.dtype, embedded=embedded)
    for engine in engines:
        preflight.worker_count(engine, max(args.workers), embedded=embedded)


def _sweep_and_report(
    plan, out: str, report_dir: str | None, table: bool = True
) -> tuple[int, list[dict]]:
    """Run ``plan``, print its table (unless not ``table``: one line) and write its report;
    the exit status and the records."""
    from scaling.run.runner import sweep

    points = len(plan.points())
    print(
        f"sweep: {plan.job.name} ({plan.mode} scaling) on {', '.join(plan.engines)} at "
        f"{','.join(map(str, plan.workers))} workers, sizes "
        f"{', '.join(f'{s:,}' for s in plan.sizes)}: {points} runs",
        file=sys.stderr,
    )
    sweep_id, records = sweep(plan, out)
    return _report(plan, out, sweep_id, records, report_dir, table), records


def _report(
    plan, out: str, sweep_id: str, records: list[dict], report_dir: str | None, table: bool
) -> int:
    """Print a finished sweep's table (unless not ``table``: one line) and write its report;
    the exit status."""
    from scaling.present.report import write_report
    from scaling.present.text import print_table
    from scaling.results import sweep_file, sweep_folder

    if table:
        print_table(records)
        print(f"\nrecords: {sweep_file(out, sweep_id)}")
    ok = [r for r in records if r["status"] == "ok" and r["engine"] != "baseline"]
    if ok:
        report = write_report(
            records,
            report_dir or sweep_folder(out, sweep_id),
            title=f"{plan.job.name}: {plan.mode} scaling ({sweep_id})",
            store=out,
        )
        print(f"report:  {report}" if table else f"{plan.job.name}: {report}")
    failed = len(records) - len(ok) - sum(r["engine"] == "baseline" for r in records)
    return 0 if ok and not failed else 1


def cmd_results(args: argparse.Namespace) -> int:
    from scaling.present.text import print_table, text_table
    from scaling.results import load, sweeps

    loaded = load(*args.paths)
    if not loaded.records:
        raise UsageError(
            "; ".join(loaded.problems)
            or f"no records in {', '.join(args.paths or [DEFAULT_STORE])}"
        )
    for problem in loaded.problems:
        print(f"scaling: warning: {problem}", file=sys.stderr)
    if args.runs:
        print_table(loaded.records)
        return 0
    rows = [("sweep", "mode", "jobs", "engines", "workers", "rows", "ok", "failed")]
    for s in sweeps(loaded.records):
        rows.append(
            (
                s["sweep_id"],
                s["mode"],
                ",".join(s["jobs"]),
                ",".join(s["engines"]),
                ",".join(map(str, s["workers"])),
                " ".join(f"{r:,}" for r in s["rows"]),
                str(s["ok"]),
                str(s["failed"]),
            )
        )
    print(text_table(rows))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from scaling.present.report import predicted_curves, winner_rows, write_report
    from scaling.present.text import text_table
    from scaling.results import load, new_sweep_id

    loaded = load(*args.sweeps)
    for problem in loaded.problems:
        print(f"scaling: warning: {problem}", file=sys.stderr)
    if not loaded.records:
        raise UsageError(
            f"no records found in {', '.join(args.sweeps)}; "
            "`scaling results` lists the sweeps in the store"
        )
    report = write_report(
        loaded.records,
        args.report or Path(DEFAULT_STORE) / f"compare-{new_sweep_id()}",
        title=args.title,
        store=DEFAULT_STORE,
    )
    if rows := winner_rows(predicted_curves(loaded.records, DEFAULT_STORE)[0]):
        print(text_table(rows))
    print(f"report: {report}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from jobs import get_job
    from scaling.present.text import steps_text as render

    job = get_job(args.job)
    if args.rows < 1 or args.features < 1 or args.workers < 1:
        raise UsageError("--rows, --features and --workers must be >= 1")
    config = _config(job, args)
    steps = job.explain(args.rows, args.features, args.workers, config)
    print(render(job.name, steps, args.rows, args.features, args.workers, job.explain_note))
    print()
    print(_predicted_lines(job, config, args))
    return 0


def _predicted_lines(job, config, args: argparse.Namespace) -> str:
    """A few lines of the predicted curve, from the first engine calibrated on this host."""
    from scaling.model import calibration
    from scaling.units import seconds

    engines = [e for e in ENGINES if e != "local"]
    cal = next((c for e in engines if (c := calibration.load(args.store, e))), None)
    if cal is None:
        return (
            f"predicted curve: no engine calibrated on this host in {args.store}; "
            f"`scaling predict {job.name} --engine ray` calibrates one and predicts"
        )
    curve = argparse.Namespace(
        rows=args.rows, features=args.features, workers=[1, 2, 4, 16, 64, 256], store=args.store
    )
    result, _ = _prediction(job, config, curve, cal)
    points = ", ".join(
        f"{r['workers']}: {seconds(r['seconds_per_iteration'])} "
        f"({r['efficiency']:.0%}, {r['dominant']})"
        for r in result["rows"]
    )
    return (
        f"predicted on {cal.engine} (modelled; `scaling predict {job.name}` for the table): "
        f"workers: time per iteration (efficiency, dominant term): {points}"
    )


def cmd_interview(args: argparse.Namespace) -> int:
    from jobs import get_job
    from scaling.present import interview

    job = get_job(args.job)
    ask = interview.Ask(job, _config(job, args), args.rows, args.features, args.workers, args.store)
    answers = interview.interview(ask)
    if args.question is not None and not 1 <= args.question <= len(answers):
        raise UsageError(f"--question: 1 to {len(answers)} for {job.name}, got {args.question}")
    if args.json:
        for n, a in enumerate(answers, 1):
            if args.question in (None, n):
                print(json.dumps({"job": job.name, **a.to_dict(n)}, default=str))
        return 0
    print(interview.render(ask, answers, args.question), end="")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from scaling.model import calibration
    from scaling.run import calibrate

    _engines(args.engine)
    cal = calibrate.calibrate(
        args.engine, args.workers, repeat=args.repeat, say=lambda s: print(s, file=sys.stderr)
    )
    path = calibration.save(args.store, cal)
    print(_calibration_lines(cal))
    print(f"calibration: {path}")
    return 0


def _calibration_lines(cal) -> str:
    from scaling.units import seconds

    a, b = cal.call
    return "\n".join(
        [
            f"{cal.engine} on {cal.host['hostname']} ({cal.host['cores']} cores), measured "
            f"{cal.measured_at} at {','.join(map(str, cal.workers))} workers:",
            f"  empty driver-loop call: {seconds(a)} + {seconds(b)} x workers",
            f"  empty all-reduce iteration in a gang: {seconds(cal.gang_iteration)}",
            f"  workers -> driver: {_bandwidth(cal.up.beta)}; driver -> workers: "
            f"{_bandwidth(cal.down.beta)}; worker <-> worker: {seconds(cal.peer.alpha)} "
            f"per message, {_bandwidth(cal.peer.beta)}",
            f"  one core: {cal.gemm / 1e9:.1f} Gflop/s GEMM, {cal.bandwidth / 1e9:.1f} GB/s "
            f"read; straggle {cal.straggle:.0%}",
        ]
    )


def _bandwidth(beta: float) -> str:
    return f"{1 / beta / 1e9:.2f} GB/s" if beta > 0 else "not measured"


def cmd_predict(args: argparse.Namespace) -> int:
    from jobs import get_job
    from scaling.model import calibration, costmodel
    from scaling.run import calibrate

    job = get_job(args.job)
    if args.rows < 1 or args.features < 1:
        raise UsageError("--rows and --features must be >= 1")
    if (args.alpha is None) != (args.beta is None):
        raise UsageError("--alpha and --beta go together (a latency and seconds per byte)")
    engine = args.engine  # not started, not even imported: predict runs nothing
    if engine not in ENGINES or engine == "local":
        raise UsageError(f"--engine: one of {', '.join(e for e in ENGINES if e != 'local')}")
    cal = calibration.load(args.store, engine)
    if cal is None:
        print(
            f"no calibration of {engine} for this host in {args.store}: measuring it once "
            f"(`scaling calibrate {engine}` does it again)",
            file=sys.stderr,
        )
        cal = calibrate.calibrate(
            engine, _calibration_workers(), say=lambda s: print(s, file=sys.stderr)
        )
        calibration.save(args.store, cal)
    network, links = None, "links: this host's loopback, as measured"
    if args.alpha is not None:
        network = costmodel.Link(args.alpha, args.beta)
        links = f"links: {args.alpha:g} s per message, {args.beta:g} s per byte (given)"
    elif args.network != "loopback":
        network = NETWORKS[args.network]
        links = (
            f"links: {args.network}, {network.alpha * 1e6:.0f} us per message, "
            f"{1 / network.beta / 1e9:.2f} GB/s (assumed), this host's compute per worker"
        )
    result, assumptions = _prediction(job, _config(job, args), args, cal, network)
    if args.json:
        for row in result["rows"]:
            print(json.dumps({"job": job.name, "engine": engine, **row}))
        return 0
    title = f"{job.name} on {engine}: {args.rows:,} rows x {args.features} features"
    from scaling.present.text import prediction_text

    print(prediction_text(title, result, [assumptions[0], links, *assumptions[1:]]))
    if args.png:
        from scaling.present.plots import png, prediction_plot
        from scaling.results import atomic_write

        atomic_write(Path(args.png), png(prediction_plot(title, result)))
        print(f"plot: {args.png}")
    return 0


def _prediction(job, config, args: argparse.Namespace, cal, network=None) -> tuple[dict, list]:
    """The cost model's curve for ``args``' rows, features and workers, and its assumptions."""
    from scaling.model import costmodel
    from scaling.results import load

    records = load(args.store).records if Path(args.store).is_dir() else []
    return costmodel.curve(
        job, config, args.rows, args.features, args.workers, cal, records, network
    )


def cmd_timeline(args: argparse.Namespace) -> int:
    from scaling.results import artifact, atomic_write, load

    loaded = load(args.store)
    record = next((r for r in loaded.records if r.get("run_id") == args.run_id), None)
    if record is None:
        raise UsageError(
            f"no run {args.run_id!r} in {args.store}; `scaling results --runs {args.store}` "
            "lists the runs (or pass --store DIR)"
        )
    path = artifact(args.store, record, "trace")
    if path is None:
        raise UsageError(
            f"run {args.run_id} has no timeline (a failed run, or recorded before timelines "
            "were); run it again"
        )
    if not path.exists():
        raise UsageError(f"run {args.run_id}'s timeline, {path}, is missing; run it again")
    data = path.read_bytes()
    trace = json.loads(data)
    out = Path(args.out or f"timeline-{args.run_id}.json")
    atomic_write(out, data)
    print(
        f"timeline: {out} ({len(trace['traceEvents'])} events; open it in "
        "https://ui.perfetto.dev or chrome://tracing)"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from jobs import JOBS, get_job
    from scaling.present.figures import cores_note
    from scaling.present.report import write_index
    from scaling.present.text import summary_rows, text_table
    from scaling.results import load
    from scaling.run import preflight
    from scaling.run.runner import SweepPlan, sweep_all

    engines = _engines(args.engines)
    workers = tuple(_all_cores())
    preflight.writable(args.out)
    plans = [
        SweepPlan(
            job=get_job(name),
            config=get_job(name).demo_config,
            engines=engines,
            workers=workers,
            sizes=(args.rows or get_job(name).demo_rows,),
            features=32,
        )
        for name in JOBS
    ]
    runs = sum(len(plan.points()) for plan in plans)
    print(
        f"demo: {', '.join(JOBS)} (strong scaling) on {', '.join(engines)} at "
        f"{','.join(map(str, workers))} workers: {runs} runs, one cluster per engine and "
        "worker count",
        file=sys.stderr,
    )
    status, records = 0, []
    for plan, (sweep_id, done) in zip(plans, sweep_all(plans, args.out), strict=True):
        status = max(status, _report(plan, args.out, sweep_id, done, None, table=False))
        records += done
    print()
    print(text_table(summary_rows(records, args.out), right_from=3, rule=True))
    print(
        "\nAt the most workers each curve reached: speedup and efficiency against its 1-worker "
        "run; COST: the fewest workers faster than the single-thread baseline (its time per "
        "iteration in brackets); quality: the job's headline measure; best p: the worker count "
        "the cost model predicts fastest, up to 1,024 (`scaling calibrate ENGINE` once for it)."
    )
    if note := cores_note(records):
        print(f"\n{note}")
    index = write_index(args.out, load(args.out).records)
    print(f"\nevery sweep's report: {index}")
    return status


def cmd_submit(args: argparse.Namespace) -> int:
    from scaling.run import cluster, preflight, submission

    if not args.cluster:
        raise UsageError(
            "submit runs on a cluster of `scaling cluster start`; add --cluster ENGINE"
        )
    verb, args.job = ("sweep", args.sweep_job) if args.job == "sweep" else ("run", args.job)
    _on_cluster(args, "engines" if verb == "sweep" else "engine")
    preflight.writable(args.out)  # the job checks the rest as it starts
    argv = [verb, args.job, *_forwarded(_verb_options(verb, args.job), args)]
    job = submission.submit(cluster.running(args.cluster), argv)
    print(job.id)
    print(
        f"`scaling jobs logs {job.id} --follow` follows it; watch it on {job.dashboard}",
        file=sys.stderr,
    )
    return 0


PATH_OPTIONS = {"data", "out", "report"}


def _forwarded(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """``args`` as the options of ``parser`` that say them, for a job that runs elsewhere: as
    parsed here (an abbreviated option spelled out, worker counts resolved from the cluster),
    with absolute paths, as the job may run in another directory. ``--cluster`` is left out:
    it has become ``--engine``/``--engines`` and ``--address``."""
    argv = []
    for action in parser._actions:  # argparse has no public list of a parser's options
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest == "cluster" or value is None:
            continue
        if value is False:  # a flag not given (0 is a value: --tol 0)
            continue
        option = max(action.option_strings, key=len)
        if value is True:
            argv.append(option)
            continue
        if action.dest in PATH_OPTIONS:
            value = Path(value).resolve()
        argv += [option, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return argv


def cmd_cluster(args: argparse.Namespace) -> int:
    from scaling.present.text import text_table
    from scaling.run import cluster

    if args.action == "start":
        c = cluster.start(args.engine, args.workers, join=args.join)
        verb = f"{args.workers} workers joined" if args.join else f"started, {c.workers} workers"
        print(f"{c.engine} cluster {verb}: --cluster {c.engine} (address {c.address})")
        for name, url in c.dashboards.items():
            print(f"  {name}: {url}")
        return 0
    if args.action == "stop":
        ended = cluster.stop(args.engine)
        print(f"{args.engine}: {len(ended)} processes ended" if ended else "nothing to stop")
        return 0
    rows = [("engine", "address", "workers", "processes", "started", "dashboards")]
    for engine in [args.engine] if args.engine else cluster.ENGINES:
        c = cluster.Cluster.load(engine)
        if c is None:
            continue
        live = sum(p.alive() for p in c.processes)
        workers = c.live_workers()
        rows.append(
            (
                engine,
                c.address,
                f"{'-' if workers is None else workers} of {c.workers}",
                f"{live} of {len(c.processes)} running",
                c.started_at,
                " ".join(c.dashboards.values()),
            )
        )
    print(text_table(rows) if len(rows) > 1 else "no clusters started here")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from scaling.present.text import text_table
    from scaling.run import submission

    if args.action in (None, "list"):
        rows = [("id", "engine", "status", "submitted", "command", "reason")]
        for job in submission.jobs():
            command = " ".join(job.argv[:2])
            rows.append((job.id, job.engine, job.status, job.submitted_at, command, job.reason))
        print(text_table(rows) if len(rows) > 1 else "no jobs submitted")
        return 0
    job = submission.Job.load(args.id)
    if args.action == "logs":
        if args.follow:
            submission.follow(job, sys.stdout)
        else:
            sys.stdout.write(submission.logs(job))
        return 0
    job = {
        "status": submission.refresh,
        "stop": submission.stop,
        "wait": lambda job: submission.wait(job, args.timeout),
    }[args.action](job)
    print(f"{job.id}: {job.status}" + (f" ({job.reason})" if job.reason else ""))
    return 1 if args.action == "wait" and job.status != "succeeded" else 0


COMMANDS = {
    "run": cmd_run,
    "sweep": cmd_sweep,
    "results": cmd_results,
    "compare": cmd_compare,
    "explain": cmd_explain,
    "interview": cmd_interview,
    "calibrate": cmd_calibrate,
    "predict": cmd_predict,
    "timeline": cmd_timeline,
    "demo": cmd_demo,
    "submit": cmd_submit,
    "cluster": cmd_cluster,
    "jobs": cmd_jobs,
}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ScalingError, ImportError) as e:
        print(f"scaling: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scaling: interrupted; results already written are intact", file=sys.stderr)
        return 130
