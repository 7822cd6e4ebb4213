"""What the commands that run jobs share: the job's config and data from the options, the
engines named, the cluster of --cluster, the checks made before any work."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from scaling.data import Source, open_file
from scaling.errors import UsageError


def engine_options(args: argparse.Namespace) -> dict:
    return {"step_timeout": args.step_timeout, "max_failures": args.max_failures}


def job_source(job, args: argparse.Namespace, rows: int, config: object) -> Source:
    if args.data:
        return open_file(args.data, args.label)
    if args.label:
        raise UsageError("--label goes with --data")
    return job.synthetic(rows, args.features, args.seed, config)


def job_config(job, args: argparse.Namespace) -> object:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(job.config)}
    return job.config(**values)


def engine_names(text: str) -> tuple[str, ...]:
    from scaling.engines import engine_class

    names = tuple(e for e in text.split(",") if e)
    for name in names:
        engine_class(name)  # unknown engine or missing framework: fail before any work
    return names


def on_cluster(args: argparse.Namespace, engine_attr: str):
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
            args.workers = [1] if engine_attr == "engine" else all_cores()
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


def on_head(found, argv: list[str]) -> int | None:
    """Run this command again on the head machine of the scale model the cluster ``found``
    runs on, the driver under the head's CPU share and in its namespace, and give its exit
    status; ``None`` where there is no scale model, or this runs on one of its machines
    already (``SCALING_MACHINE``: set for what runs there, a Ray job's driver too)."""
    if found is None or found.machines is None or os.environ.get("SCALING_MACHINE"):
        return None
    import subprocess

    from scaling.run.machines import ScaleModel

    model = ScaleModel.load(found.machines)
    if model is None:
        raise UsageError(
            f"the machines of the {found.engine} cluster are gone: `scaling cluster stop "
            f"{found.engine}`, then start it again"
        )
    command, env = model.driver([sys.executable, "-m", "scaling.cli", *argv])
    return subprocess.call(command, env=env)


def say_dashboards(found) -> None:
    """Where to watch a run on a cluster of `scaling cluster start` while it runs."""
    if found is not None and found.dashboards:
        print(f"watch it on {' '.join(found.dashboards.values())}", file=sys.stderr)


def all_cores() -> list[int]:
    return list(range(1, (os.cpu_count() or 1) + 1))


def check_before_work(args: argparse.Namespace, engines, rows: int, features: int) -> None:
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
