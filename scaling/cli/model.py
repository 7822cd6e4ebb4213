"""``scaling explain``, ``interview``, ``calibrate`` and ``predict``: a job's declared steps,
the answers about it, and the cost model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scaling.cli.common import (
    engine_names,
    job_config,
)
from scaling.cli.options import calibration_workers
from scaling.engines import ENGINES
from scaling.errors import UsageError
from scaling.model.patterns import NETWORKS, Link


def cmd_explain(args: argparse.Namespace) -> int:
    from jobs import get_job
    from scaling.present.text import steps_text as render

    job = get_job(args.job)
    if args.rows < 1 or args.features < 1 or args.workers < 1:
        raise UsageError("--rows, --features and --workers must be >= 1")
    config = job_config(job, args)
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
    from scaling.present.answers import Ask

    job = get_job(args.job)
    ask = Ask(job, job_config(job, args), args.rows, args.features, args.workers, args.store)
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

    engine_names(args.engine)
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
            *(
                f"  worker <-> worker at {p} workers: {seconds(link.alpha)} per message, "
                f"{_bandwidth(link.beta)}"
                for p, link in cal.peers.items()
            ),
        ]
    )


def _bandwidth(beta: float) -> str:
    return f"{1 / beta / 1e9:.2f} GB/s" if beta > 0 else "not measured"


def cmd_predict(args: argparse.Namespace) -> int:
    from jobs import get_job
    from scaling.model import calibration
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
            engine, calibration_workers(), say=lambda s: print(s, file=sys.stderr)
        )
        calibration.save(args.store, cal)
    network, links = None, "links: this host's loopback, as measured"
    if args.alpha is not None:
        network = Link(args.alpha, args.beta)
        links = f"links: {args.alpha:g} s per message, {args.beta:g} s per byte (given)"
    elif args.network != "loopback":
        network = NETWORKS[args.network]
        links = (
            f"links: {args.network}, {network.alpha * 1e6:.0f} us per message, "
            f"{1 / network.beta / 1e9:.2f} GB/s (assumed), this host's compute per worker"
        )
    result, assumptions = _prediction(job, job_config(job, args), args, cal, network, measure=True)
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


def _prediction(
    job, config, args: argparse.Namespace, cal, network=None, measure: bool = False
) -> tuple[dict, list]:
    """The cost model's curve for ``args``' rows, features and workers, and its assumptions;
    its compute from the job's iteration timed on samples of the shape: timed now if
    ``measure`` and not timed before (:mod:`scaling.run.sample`), else only if kept."""
    from scaling.model import costmodel
    from scaling.results import load
    from scaling.run import sample

    records = load(args.store).records if Path(args.store).is_dir() else []
    shape = (args.store, job, config, args.rows, args.features)
    samples = (
        sample.measure(*shape, say=lambda s: print(s, file=sys.stderr))
        if measure
        else sample.cached(*shape)
    )
    return costmodel.curve(
        job, config, args.rows, args.features, args.workers, cal, records, network, samples
    )
