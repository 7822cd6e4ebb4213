"""``scaling run``, ``sweep`` and ``demo``: jobs run here, on embedded clusters or on a running
one, their records kept and reported."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time

from scaling.cli.common import (
    all_cores,
    check_before_work,
    engine_names,
    engine_options,
    job_config,
    job_source,
    on_cluster,
    on_head,
    say_dashboards,
)
from scaling.engines import ENGINES
from scaling.errors import UsageError


def cmd_run(args: argparse.Namespace) -> int:
    from jobs import get_job
    from scaling.present.text import failure_lines, print_table
    from scaling.results import sweep_file
    from scaling.run.runner import run_each
    from scaling.run.spec import RunSpec, new_run_id

    job = get_job(args.job)
    found = on_cluster(args, "engine")
    if (status := on_head(found, args.argv)) is not None:
        return status
    say_dashboards(found)
    engine_names(args.engine)
    config = job_config(job, args)
    source = job_source(job, args, args.rows, config)
    check_before_work(args, [args.engine], source.rows, source.features)
    if args.checkpoint_every < 0:
        raise UsageError(f"--checkpoint-every takes rounds >= 0, got {args.checkpoint_every}")
    if args.resume and len(args.workers) > 1:
        raise UsageError("--resume goes on with one run: give one worker count (--workers N)")
    spec = RunSpec(
        job=job, engine=args.engine, workers=args.workers[0], source=source, config=config,
        address=args.address, partitions=args.partitions, dtype=args.dtype,
        kill_worker_at=args.kill_worker_at, run_id=args.resume or new_run_id(),
        emulation=found.emulation if found else None, **engine_options(args),
    )  # fmt: skip

    def printed(record: dict) -> None:
        if args.json:
            print(json.dumps(record, sort_keys=True, default=str), flush=True)

    records = run_each(
        spec, args.workers, args.out, checkpoint_every=args.checkpoint_every,
        resume=bool(args.resume), on_record=printed,
    )  # fmt: skip
    if not args.json:
        print_table(records)
        for line in failure_lines(records):
            print(line)
        print(f"\nrecords: {sweep_file(args.out, spec.sweep_id)}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from jobs import get_job
    from scaling.run.sweep import SweepPlan

    if args.emulate is not None:
        return _emulated_sweep(args)
    args.engines = args.engines or ",".join(ENGINES)
    job = get_job(args.job)
    found = on_cluster(args, "engines")
    if (status := on_head(found, args.argv)) is not None:
        return status
    say_dashboards(found)
    config = job_config(job, args)
    data = job_source(job, args, 1, config) if args.data else None
    plan = SweepPlan(
        job=job,
        config=config,
        engines=engine_names(args.engines),
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
        engine_options=tuple(engine_options(args).items()),
        emulation=found.emulation if found else None,
    )
    most = max(plan.sizes) * (max(plan.workers) if plan.mode == "weak" else 1)
    check_before_work(args, plan.engines, data.rows if data else most, plan.features)
    return _sweep_and_report(plan, args.out, args.report)[0]


def _emulated_sweep(args: argparse.Namespace) -> int:
    """``--emulate N``: the sweep on a scale model of N machines, started around it (the
    sweep's driver on its head) and stopped after, whatever happened."""
    from scaling.run import cluster
    from scaling.run.daemons import terminate_as_interrupt

    engines = engine_names(args.engines or "dask")
    if len(engines) != 1 or engines[0] == "local":
        raise UsageError("--emulate builds one engine's cluster: --engines ray, dask or spark")
    if args.address or args.cluster:
        raise UsageError("--emulate builds a cluster of its own: leave out --address and --cluster")
    engine = engines[0]
    with terminate_as_interrupt():
        started = cluster.start(
            engine, 1, machines=args.emulate, cores=args.cores_per_machine, link=args.link
        )
        try:
            own = ("--emulate", "--cores-per-machine", "--link", "--engines")
            return on_head(started, [*without(args.argv, own), "--cluster", engine]) or 0
        finally:
            cluster.stop(engine)


def without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``argv`` less ``options`` and their values (``--option VALUE`` or ``--option=VALUE``)."""
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word in options:
            skip = True
        elif not word.startswith(tuple(f"{o}=" for o in options)):
            out.append(word)
    return out


def _sweep_and_report(
    plan, out: str, report_dir: str | None, table: bool = True
) -> tuple[int, list[dict]]:
    """Run ``plan``, print its table (unless not ``table``: one line) and write its report;
    the exit status and the records."""
    from scaling.run.sweep import sweep

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


def cmd_demo(args: argparse.Namespace) -> int:
    from jobs import JOBS, get_job
    from scaling.present.figures import cores_note
    from scaling.present.report import SUMMARY, write_index
    from scaling.present.text import summary_rows, text_table
    from scaling.results import load
    from scaling.run import preflight
    from scaling.run.sweep import SweepPlan, sweep_all

    engines = engine_names(args.engines)
    workers = tuple(all_cores())
    preflight.writable(args.out)
    plans = [
        SweepPlan(
            job=job,
            config=config,
            engines=engines,
            workers=workers,
            sizes=(args.rows or job.demo_rows,),
            features=32,
        )
        for job in map(get_job, JOBS)
        for config in _styles(job.demo_config)
    ]
    runs = sum(len(plan.points()) for plan in plans)
    calibrating = _DemoCalibration(args.out, engines)
    print(
        f"demo: {', '.join(JOBS)} (strong scaling; k-means and logistic regression in both "
        f"execution styles) on {', '.join(engines)} at {','.join(map(str, workers))} "
        f"workers: {runs} runs, one cluster per engine and worker count"
        + (
            f"; calibrating {', '.join(calibrating.engines)} on them" if calibrating.engines else ""
        ),
        file=sys.stderr,
    )
    status, records = 0, []
    done = sweep_all(plans, args.out, between=calibrating.measure)
    for line in calibrating.save():
        print(line, file=sys.stderr)
    for plan, (sweep_id, ran) in zip(plans, done, strict=True):
        status = max(status, _report(plan, args.out, sweep_id, ran, None, table=False))
        records += ran
    print()
    print(text_table(summary_rows(records, args.out), right_from=3, rule=True))
    print(f"\n{SUMMARY}")
    if note := cores_note(records):
        print(f"\n{note}")
    index = write_index(args.out, load(args.out).records)
    print(f"\nevery sweep's report: {index}")
    return max(status, _demo_emulated(args))


def _styles(config) -> list:
    """``config`` in each execution style it takes: a map-reduce job's two, side by side in
    the demo (a gang job's strategy takes one)."""
    from scaling.execution import EXECUTIONS

    if "execution" not in {f.name for f in dataclasses.fields(config)}:
        return [config]
    styles = []
    for execution in EXECUTIONS:
        with contextlib.suppress(UsageError):  # a style the job's strategy does not take
            styles.append(dataclasses.replace(config, execution=execution))
    return styles


class _DemoCalibration:
    """The calibration of each engine not yet calibrated in the store, measured on the demo's
    own clusters after their runs (no cluster started for it), so that the summary's "best
    p" is filled on a first demo."""

    REPEAT = 5  # calls per point: a quarter of a minute per engine, not `calibrate`'s 15

    def __init__(self, store: str, engines) -> None:
        from scaling.model import calibration

        self.store = store
        wanted = [e for e in engines if e != "local" and not calibration.load(store, e)]
        self.points: dict[str, list[dict]] = {e: [] for e in wanted}
        self.versions: dict[str, str] = {}
        self.seconds: dict[str, float] = dict.fromkeys(wanted, 0.0)
        self.failed: dict[str, str] = {}

    @property
    def engines(self) -> list[str]:
        """The engines it calibrates."""
        return list(self.points)

    def measure(self, engine) -> None:
        from scaling.run import calibrate

        name = engine.name
        if name not in self.points or name in self.failed:
            return
        t0 = time.perf_counter()
        try:
            self.points[name].append(calibrate.measure(engine, self.REPEAT))
            self.versions[name] = engine.version
        except Exception as e:  # the demo's runs are kept; only best p stays empty
            self.failed[name] = f"{type(e).__name__}: {e}"
        self.seconds[name] += time.perf_counter() - t0

    def save(self) -> list[str]:
        """Fit and keep each engine's calibration; a line on each."""
        from scaling.model import calibration

        lines = []
        for name, points in self.points.items():
            if name in self.failed or not points:
                lines.append(f"{name}: not calibrated ({self.failed.get(name, 'no runs')}); "
                             f"`scaling calibrate {name}` fills best p")  # fmt: skip
                continue
            cal = calibration.fit(name, self.versions[name], points)
            calibration.save(self.store, cal)
            at = ",".join(map(str, cal.workers))
            lines.append(f"{name} calibrated in {self.seconds[name]:.0f} s on the demo's "
                         f"clusters at {at} workers (for best p)")  # fmt: skip
        return lines


DEMO_EMULATED = ["kmeans", "--emulate", "4", "--link", "1gbit", "--workers", "1,2,4",
                 "--execution", "allreduce", "--features", "32", "--k", "16", "--max-iter", "6",
                 "--tol", "0", "--no-baseline"]  # fmt: skip
"""The demo's look past this host's cores: k-means on a scale model of four machines, in the
all-reduce style (its driver loop turns back sooner: the head's scheduler, slowed like the
rest, is in every step; benchmarks/results/emulated-8.md)."""


def _demo_emulated(args: argparse.Namespace) -> int:
    """``scaling sweep`` :data:`DEMO_EMULATED` into the demo's store where this host can build
    a scale model (root, a CPU cgroup controller), else one line saying why not."""
    from scaling.cli.options import build_parser
    from scaling.run.machines import why_not

    if reason := why_not():
        print(f"\nno scale model of more machines than cores here: {reason}")
        return 0
    argv = ["sweep", *DEMO_EMULATED, "--rows", str(args.rows or 1_000_000), "--out", args.out]
    print(f"\npast this host's cores, k-means in the all-reduce style on a scale model of 4 "
          f"machines: scaling {' '.join(argv)}")  # fmt: skip
    sweep = build_parser(only="sweep").parse_args(argv)
    sweep.argv = argv
    return cmd_sweep(sweep)
