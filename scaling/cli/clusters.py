"""``scaling cluster``, ``submit`` and ``jobs``: a local cluster that keeps running, jobs
submitted to it, and following them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scaling.cli.common import (
    on_cluster,
)
from scaling.cli.options import verb_options
from scaling.errors import UsageError


def cmd_submit(args: argparse.Namespace) -> int:
    from scaling.run import cluster, preflight, submission

    if not args.cluster:
        raise UsageError(
            "submit runs on a cluster of `scaling cluster start`; add --cluster ENGINE"
        )
    verb, args.job = ("sweep", args.sweep_job) if args.job == "sweep" else ("run", args.job)
    on_cluster(args, "engines" if verb == "sweep" else "engine")
    preflight.writable(args.out)  # the job checks the rest as it starts
    argv = [verb, args.job, *forwarded(verb_options(verb, args.job), args)]
    job = submission.submit(cluster.running(args.cluster), argv)
    print(job.id)
    print(
        f"`scaling jobs logs {job.id} --follow` follows it; watch it on {job.dashboard}",
        file=sys.stderr,
    )
    return 0


PATH_OPTIONS = {"data", "out", "report", "init"}  # init: a .npy file, or a method's name


def forwarded(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
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
        if action.dest in PATH_OPTIONS and (action.dest != "init" or value.endswith(".npy")):
            value = Path(value).resolve()
        argv += [option, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return argv


def emulated(emulation: dict) -> str:
    """A scale model in a line: its machines, cores, link and dilation."""
    e = emulation
    said = (
        f"{e['machines']} machines x {e['cores_per_machine']} cores on {e['link']} links, "
        f"emulated ({e['dilation']:.2f}x)"
    )
    if e["dilation"] < 0.8 * e["nominal_dilation"]:  # what a quota gives on a busy host
        said += (
            f"; the host is busy: the machines' quotas slow them {e['dilation']:.2f}x where "
            f"{e['nominal_dilation']:.2f}x was set, so other work shares their cores and their "
            "times are less faithful"
        )
    return said


def cmd_cluster(args: argparse.Namespace) -> int:
    from scaling.present.text import text_table
    from scaling.run import cluster

    if args.action == "start":
        c = cluster.start(
            args.engine, args.workers, join=args.join, host=args.host, machines=args.machines,
            cores=args.cores_per_machine, link=args.link, dilation=args.dilation,
        )  # fmt: skip
        verb = f"{args.workers} workers joined" if args.join else f"started, {c.workers} workers"
        print(f"{c.engine} cluster {verb}: --cluster {c.engine} (address {c.address})")
        if c.emulation:
            print(f"  {emulated(c.emulation)}")
        for name, url in c.dashboards.items():
            print(f"  {name}: {url}")
        return 0
    if args.action in ("partition", "heal"):
        from scaling.run.machines import ScaleModel

        c = cluster.running(args.engine)
        model = ScaleModel.load(c.machines) if c is not None and c.machines else None
        if model is None:
            raise UsageError(
                f"no {args.engine} cluster on a scale model runs here: `scaling cluster start "
                f"{args.engine} --machines N` starts one"
            )
        machine = model.machine(args.machine)
        getattr(model, args.action)(machine)
        state = "off the network" if args.action == "partition" else "back on the network"
        print(f"{machine.name} ({machine.address}) is {state}")
        return 0
    if args.action == "stop":
        ended = cluster.stop(args.engine)
        print(f"{args.engine}: {len(ended)} processes ended" if ended else "nothing to stop")
        return 0
    rows = [("engine", "address", "workers", "processes", "started", "machines", "dashboards")]
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
                emulated(c.emulation) if c.emulation else "-",
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
    job = submission.Submission.load(args.id)
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
