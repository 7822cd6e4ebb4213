"""``scaling``: run jobs on local, Ray, Dask or Spark workers and see how they scale.

Errors a user can fix print one line, ``scaling: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from scaling.data import Blobs, Source, open_file
from scaling.engines import ENGINES
from scaling.engines.base import DTYPES
from scaling.errors import ScalingError, UsageError
from scaling.results import RUNS_FILE

GLOBAL_FIELDS = {"seed"}  # config fields set by a global option, not a job option


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _workers(text: str) -> list[int]:
    try:
        counts = [int(w) for w in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(
            f"workers must be positive integers like 2 or 1,2,4, got {text!r}"
        )
    return counts


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

    run = commands.add_parser("run", help="run one job on one engine at one or more worker counts")
    jobs = run.add_subparsers(
        dest="job", required=True, parser_class=_Parser, metavar="{" + ",".join(JOBS) + "}"
    )
    for name in JOBS:
        job_parser = jobs.add_parser(name, help=f"run {name}")
        _run_options(job_parser)
        _job_options(job_parser, get_job(name).CONFIG)

    demo = commands.add_parser("demo", help="k-means on every engine at 1 and 2 workers")
    demo.add_argument("--rows", type=int, default=1_000_000)
    demo.add_argument("--engines", default=",".join(ENGINES))
    demo.add_argument("--out", default="results/demo", help="directory for the run records")
    return parser


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default="local", help=f"one of {', '.join(ENGINES)}")
    p.add_argument(
        "--workers",
        type=_workers,
        default=[1],
        help="worker counts, e.g. 1,2: one run per count (default: 1)",
    )
    p.add_argument(
        "--address",
        help="connect to a running cluster instead of starting one "
        "(ray://host:port, tcp://scheduler:port, spark://master:port)",
    )
    p.add_argument("--partitions", type=int, help="partitions (default: one per worker)")
    p.add_argument("--rows", type=int, default=100_000, help="synthetic rows (default: 100000)")
    p.add_argument("--features", type=int, default=16, help="synthetic features (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="data and algorithm seed (default: 0)")
    p.add_argument("--data", help="a .npy, .parquet or .csv file instead of synthetic data")
    p.add_argument("--label", help="label column of --data, left out of the features")
    p.add_argument("--dtype", default="float64", choices=DTYPES)
    p.add_argument("--out", help="append one JSON record per run to OUT/runs.jsonl")
    p.add_argument("--json", action="store_true", help="print the records as JSON lines")


def _source(job, args: argparse.Namespace, config: object) -> Source:
    if args.data:
        return open_file(args.data, args.label)
    if args.label:
        raise UsageError("--label goes with --data")
    return job.synthetic(args.rows, args.features, args.seed, config)


def _config(job, args: argparse.Namespace) -> object:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(job.CONFIG)}
    return job.CONFIG(**values)


def _measure(
    job, engine: str, workers: int, source: Source, config: object, out: str | None, **options
) -> dict:
    """One run with a progress bar over its iterations; its record, appended to ``out``."""
    from scaling.results import append_record
    from scaling.runner import run_job

    with _progress(f"{engine} x{workers}", getattr(config, "max_iter", None)) as bar:
        run = run_job(
            job,
            engine,
            workers,
            source,
            config,
            on_iteration=lambda it, shift: bar.update(1),
            **options,
        )
    return append_record(out, run.record, run.arrays) if out else run.record


def cmd_run(args: argparse.Namespace) -> int:
    from jobs import get_job
    from scaling.engines import engine_class
    from scaling.report import print_table

    job = get_job(args.job)
    engine_class(args.engine)  # unknown engine or missing framework: fail before any work
    config = _config(job, args)
    source = _source(job, args, config)
    records = []
    for workers in args.workers:
        records.append(
            _measure(
                job,
                args.engine,
                workers,
                source,
                config,
                args.out,
                address=args.address,
                partitions=args.partitions,
                dtype=args.dtype,
            )
        )
        if args.json:
            print(json.dumps(records[-1], sort_keys=True, default=str), flush=True)
    if not args.json:
        print_table(records)
    if args.out:
        print(f"\nrecords: {Path(args.out) / RUNS_FILE}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from jobs import kmeans
    from scaling.engines import engine_class
    from scaling.report import print_table

    engines = [e for e in args.engines.split(",") if e]
    for e in engines:
        engine_class(e)
    # Overlapping blobs keep Lloyd moving, so every run does the same 10 iterations.
    source = Blobs(rows=args.rows, features=32, centers=16, cluster_std=8.0, seed=0)
    config = kmeans.KMeansConfig(k=16, max_iter=10, tol=0.0, init="k-means||")
    print(
        f"k-means|| + {config.max_iter} Lloyd iterations on {source.rows:,} x "
        f"{source.features} blobs, k={config.k}, on {', '.join(engines)} at 1 and 2 workers",
        file=sys.stderr,
    )
    records = [_measure(kmeans, e, w, source, config, args.out) for e in engines for w in (1, 2)]
    print_table(records)
    print(f"\nrecords: {Path(args.out) / RUNS_FILE}")
    return 0


class _progress:
    """A tqdm bar on a terminal; nothing when output is not a terminal (CI logs)."""

    def __init__(self, desc: str, total: int | None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, desc=desc, unit="it", leave=False, file=sys.stderr, disable=None
        )

    def __enter__(self):
        return self.bar

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"run": cmd_run, "demo": cmd_demo}[args.command](args)
    except ScalingError as e:
        print(f"scaling: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"scaling: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scaling: interrupted; results already written are intact", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
