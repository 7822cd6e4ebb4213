"""How well the cost model predicts what it did not see: held-out points, per job and engine.

    .venv/bin/python benchmarks/costmodel.py                        # the recorded run
    .venv/bin/python benchmarks/costmodel.py --engines dask --jobs kmeans --repeat 1
    .venv/bin/python benchmarks/costmodel.py --emulate 8 --workers 1,2,4,8 --engines dask
    # a calibration alone, then the recorded points priced again with it (same options)
    .venv/bin/python benchmarks/costmodel.py --emulate 8 ... --jobs '' --points cal.pickle
    .venv/bin/python benchmarks/costmodel.py --emulate 8 ... --points RESULTS.json,cal.pickle

Per engine: calibrate at 1 and 2 workers (:mod:`scaling.model.calibration`, empty and synthetic
work only), then train every job's decompositions (``VARIANTS``: execution styles, solvers,
SGD strategies, boosted-tree modes) on each of its ``SHAPES`` at 1 and 2 workers, ``--repeat``
times, interleaved so that the machine's noise falls on every variant alike. The statistic is
a fit's median time per iteration after the first (as ``scaling run`` records it), and its
median over the repeats.

- **Fitted** (:func:`scaling.model.costmodel.fit_compute`): each variant's 1-worker runs on its
  job's first two shapes (its compute: a fixed cost per iteration and a factor on the roofline)
  and, where a library brings its own sockets (gloo, XGBoost's, LightGBM's), its 2-worker
  run on the first shape (a factor on that transport's modelled time,
  :func:`scaling.model.costmodel.fit_transport`).
- **Sampled** (:func:`scaling.model.costmodel.fit_samples`, what ``scaling predict`` does):
  each point's compute from its variant's iteration timed in-process on samples of the
  point's own shape (:mod:`scaling.run.sample`), no measured point's compute; the transport
  factor fitted the same way, on what this compute leaves of the 2-worker run.
- **Held out**: every other point: 2 workers on the other shapes, and 1 and 2 on the third
  (other features, or a model size between the fitted two); the model never sees their
  times.
- **Error**: predicted / measured - 1; per job x engine and model the median and the worst
  |error|.
- **Winners**: in every held-out cell (engine, shape, workers) the variant the model
  predicts fastest against the one measured fastest, for the SGD strategies and the
  boosted-tree modes (the target's families) and the other jobs' variants.

- **On a scale model** (``--emulate N``, root): per engine a cluster of N one-core machines
  (:mod:`scaling.run.machines`, ``scaling cluster start ENGINE --machines N``), this script run
  again on its head to calibrate and measure there; every time it measures, the calibration's
  included, divided by the model's dilation D (the modelled cluster's times), as read through
  the run: the driver on the head asks a probe beside the model
  (:func:`common.dilation_probe`) before and after every shape and the calibration (``READ``
  says which reading of them the tables take; the others are priced beside it). The samples
  are timed on the model's worker machines after its runs (:func:`samples_on_machines`), as
  Ernest times them on the cluster's own: each kernel runs on a machine at a speed of its own
  relative to this host's, which samples timed here would carry into the error.

Writes ``benchmarks/results/costmodel.{md,json}`` (``costmodel-emulated-N.{md,json}`` with
``--emulate N``); the reading in the .md is kept across runs. ``--points`` keeps what was
measured, or prices it again: a kept file, or a results .json this script wrote (its points
and calibration); a calibration measured alone (``--jobs ''``) and named after them replaces
theirs, its times divided by the points' readings of D (each scale model is built alike).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS, dilation_now, host_line, kept_reading, scale_model, write_result
from tqdm import tqdm

from jobs import get_job
from scaling.engines import make_engine
from scaling.errors import EngineError
from scaling.model import calibration, costmodel
from scaling.present.text import text_table
from scaling.run import calibrate, sample

VARIANTS = {name: get_job(name).variants for name in ("kmeans", "logreg", "sgd", "gbdt")}
"""Each job's decompositions, as config options (the jobs' own ``variants``)."""

OPTIONS = {
    "kmeans": {"k": 16, "max_iter": 8, "tol": 0.0, "init": "random"},
    "logreg": {"max_iter": 8, "tol": 1e-12},
    "sgd": {"max_steps": 30, "eval_every": 30},
    "gbdt": {"rounds": 8, "top_k": 4, "timeout": 1800.0},
}
"""Options every variant shares: a few iterations each, enough for a median."""

SHAPES = {
    "kmeans": [(200_000, 16, {}), (800_000, 16, {}), (200_000, 64, {})],
    "logreg": [(200_000, 32, {}), (1_000_000, 32, {}), (200_000, 128, {})],
    "sgd": [
        (100_000, 32, {"hidden": "64,64", "batch_size": 512}),
        (100_000, 32, {"hidden": "256,256", "batch_size": 4096}),
        (100_000, 32, {"hidden": "128,128", "batch_size": 2048}),
    ],
    "gbdt": [(50_000, 16, {}), (200_000, 16, {}), (50_000, 64, {})],
}
"""(rows, features, options) per job. The model is fitted on the first ``FITTED`` at one
worker: two numbers of rows (for SGD two model and batch sizes), what strong scaling varies
per worker. The last shape changes what the fit did not vary (the features, or a model size
between the two), so that it tests the model's extrapolation, not only its interpolation."""

EMULATED_SHAPES = {
    "kmeans": [(1_000_000, 32, {}), (2_000_000, 32, {}), (1_000_000, 64, {})],
    "logreg": [(1_000_000, 32, {}), (2_000_000, 32, {}), (1_000_000, 64, {})],
    "sgd": [
        (100_000, 32, {"hidden": "512,512", "batch_size": 8192}),
        (100_000, 32, {"hidden": "256,256", "batch_size": 16384}),
        (100_000, 32, {"hidden": "384,384", "batch_size": 8192}),
    ],
    "gbdt": [(400_000, 16, {}), (800_000, 16, {}), (400_000, 48, {})],
}
"""The shapes on a scale model: 2-4x the work of ``SHAPES`` per iteration, so that each of 8
machines still has a step of a few milliseconds of its own. A machine's CPU share is a quota
per 10 ms period, checked at the scheduler's tick: a step that starts after a wait runs its
first few milliseconds at the host's speed (up to 4 ms of a core here, 4 ms ticks), which on
a small step is most of it."""

EMULATED_OPTIONS = {
    "kmeans": {"max_iter": 5},
    "logreg": {"max_iter": 5},
    "sgd": {"max_steps": 12, "eval_every": 12},
    "gbdt": {"rounds": 5},
}
"""Fewer iterations on a scale model, where each takes D times as long: a median of 4."""

FITTED = 2

FAMILIES = ("sgd", "gbdt")
"""The decompositions the winner target counts (the SGD strategies, the GBDT modes)."""


def measure(eng, ds, job, config) -> dict:
    """One fit: its median iteration's time and compute (after the first iteration)."""
    eng.trace.reset()
    job.fit(eng, ds, config)
    _, typical = eng.trace.typical(job.iteration)
    return {k: typical[k] for k in ("wall", "compute", "communication")}


def _medians(runs: list[dict], dilation: float) -> dict:
    """Median time and parts over repeats (each part's own median), and each repeat's time
    (``repeats``: how far the measurement moves by itself), divided by a scale model's
    ``dilation`` (1 on this host's own workers)."""
    return {
        "seconds": statistics.median(r["wall"] for r in runs) / dilation,
        "repeats": [r["wall"] / dilation for r in runs],
        "compute": statistics.median(r["compute"] for r in runs) / dilation,
        "communication": statistics.median(r["communication"] for r in runs) / dilation,
    }


def measure_all(
    args: argparse.Namespace, keep=lambda points: None, d: float | None = None
) -> list[dict]:
    """Every (engine, job, variant, shape, workers) point, measured (on the cluster at
    ``--address``, its times divided by ``--dilation``); ``keep(points)`` after each shape.
    A shape whose runs fail is left out, said, and the engine started again. On a scale
    model each point keeps its ``stretch``: D read just before its shape's runs (``d``, the
    first) and just after."""
    points = []
    shapes = EMULATED_SHAPES if args.emulate else SHAPES
    total = sum(len(VARIANTS[j]) * len(shapes[j]) for j in args.jobs) * len(args.workers)
    bar = tqdm(total=total * len(args.engines) * args.repeat, desc="cost model")
    for engine in args.engines:
        for p in args.workers:
            eng = make_engine(engine, p, address=args.address)
            try:
                for name in args.jobs:
                    job = get_job(name)
                    for shape, (rows, features, shared) in enumerate(shapes[name]):
                        configs = _configs(args, name, shared)
                        try:
                            runs = _runs(eng, job, rows, features, configs, args.repeat, bar)
                        except EngineError as e:
                            print(f"\n{engine} x{p}: {name} {rows:,} x {features} left out: {e}")
                            eng.close()
                            eng = make_engine(engine, p, address=args.address)
                            continue
                        after = dilation_now()
                        stretch, d = (d, after), after
                        points += [
                            {
                                "engine": engine,
                                "job": name,
                                "variant": v,
                                "shape": shape,
                                "rows": rows,
                                "features": features,
                                "options": shared,
                                "workers": p,
                                **_medians(runs[v], args.dilation),
                                "config": config,
                                **({"stretch": stretch} if stretch[1] else {}),
                            }
                            for v, config in configs.items()
                        ]
                        keep(points)
            finally:
                eng.close()
    bar.close()
    return points


def _configs(args: argparse.Namespace, name: str, shared: dict) -> dict:
    """Each variant's config of job ``name`` on a shape whose own options are ``shared``."""
    options = OPTIONS[name] | (EMULATED_OPTIONS[name] if args.emulate else {})
    job = get_job(name)
    return {v: job.config(**options, **shared, **variant) for v, variant in VARIANTS[name].items()}


def _runs(eng, job, rows: int, features: int, configs: dict, repeat: int, bar) -> dict:
    """Each variant's fits of one shape, ``repeat`` each, interleaved: drift hits every
    variant alike."""
    ds = eng.load(job.synthetic(rows, features, 0, next(iter(configs.values()))))
    runs: dict[str, list[dict]] = {v: [] for v in configs}
    for _ in range(repeat):
        for v, config in configs.items():
            runs[v].append(measure(eng, ds, job, config))
            bar.update()
    eng.release(ds)
    return runs


def predict_all(points: list[dict], cals: dict, store: str) -> None:
    """Each point's two predictions. **Fitted**, from its variant's fitted points: the first
    ``FITTED`` shapes at one worker (compute), and where a library brings its own transport,
    the first shape at two workers (its factor). **Sampled**: compute from the variant's
    iteration timed on samples of the point's own shape (:mod:`scaling.run.sample`, kept in
    ``store``), no measured point's compute; each with the transport factor that its compute
    leaves of the fitted 2-worker run."""
    for pt in points:
        job = get_job(pt["job"])
        library = any(s.transport for s in steps(job, pt, 2))
        pt["held_out"] = not (
            (pt["shape"] < FITTED and pt["workers"] == 1)
            or (library and pt["shape"] == 0 and pt["workers"] == 2)
        )
    for pt in points:
        job, cal = get_job(pt["job"]), cals[pt["engine"]]
        key = (pt["engine"], pt["job"], pt["variant"])
        fitted = [
            f for f in points if (f["engine"], f["job"], f["variant"]) == key and not f["held_out"]
        ]
        ones = [(roofline(job, f, cal), f["compute"]) for f in fitted if f["workers"] == 1]
        wider = [
            (steps(job, f, f["workers"]), f["workers"], f["seconds"])
            for f in fitted
            if f["workers"] > 1
        ]
        samples = [sample.Sample(**s) for s in pt.get("machine_samples", ())] or sample.measure(
            store, job, pt["config"], pt["rows"], pt["features"], say=print
        )
        what = f"{pt['job']} {pt['variant']}"
        models = {
            "fitted": costmodel.fit_compute(ones, what),
            "sampled": costmodel.fit_samples(job, pt["config"], samples, cal),
        }
        for name, compute in models.items():
            # the transport factor is what each model's compute leaves of the wider run
            correction = costmodel.fit_transport(compute, wider, cal, what)
            (terms,) = costmodel.predict(
                lambda p, pt=pt, job=job: steps(job, pt, p), [pt["workers"]], cal, correction
            )
            pt[name] = {
                "predicted": terms.seconds,
                "spread": terms.spread,
                "error": terms.seconds / pt["seconds"] - 1,
                "dominant": terms.dominant,
                "terms": terms.parts,
                "where": correction.where,
            }


def steps(job, pt: dict, workers: int) -> list:
    return job.explain(pt["rows"], pt["features"], workers, pt["config"])


def roofline(job, pt: dict, cal) -> float:
    return costmodel.roofline_seconds(job, pt["rows"], pt["features"], pt["config"], cal)


MODELS = ("fitted", "sampled")


def errors(points: list[dict]) -> list[dict]:
    """Median and worst |error| of each model over the held-out points of each job x engine."""
    out = []
    for job in dict.fromkeys(pt["job"] for pt in points):
        for engine in dict.fromkeys(pt["engine"] for pt in points):
            held = [pt for pt in points if (pt["job"], pt["engine"]) == (job, engine)]
            held = [pt for pt in held if pt["held_out"]]
            if not held:
                continue
            row = {"job": job, "engine": engine, "points": len(held)}
            if apart := [repeats_apart(pt) for pt in held if len(pt.get("repeats", ())) > 1]:
                row["repeats_apart"] = statistics.median(apart)
            for model in MODELS:
                worst = max(held, key=lambda pt: abs(pt[model]["error"]))
                row[model] = {
                    "median": statistics.median(abs(pt[model]["error"]) for pt in held),
                    "worst": abs(worst[model]["error"]),
                    "worst_at": _where(worst),
                }
            out.append(row)
    return out


def repeats_apart(pt: dict) -> float:
    """How far a point's repeats are apart, the slowest over the fastest less 1: what the
    measurement moves by itself, against which a model's error is read."""
    return max(pt["repeats"]) / min(pt["repeats"]) - 1


def winners(points: list[dict]) -> list[dict]:
    """Per held-out cell with several variants: the measured fastest, and each model's."""
    cells: dict[tuple, list[dict]] = {}
    for pt in points:
        cells.setdefault((pt["job"], pt["engine"], pt["shape"], pt["workers"]), []).append(pt)
    out = []
    for (job, engine, _, workers), pts in cells.items():
        if not all(pt["held_out"] for pt in pts) or len(pts) < 2:
            continue
        measured = min(pts, key=lambda pt: pt["seconds"])
        cell = {"job": job, "engine": engine, "cell": _shape(pts[0]) + f", {workers} w"}
        cell["measured"] = measured["variant"]
        for model in MODELS:
            first, second = sorted(pts, key=lambda pt: pt[model]["predicted"])[:2]
            tied = costmodel.cannot_tell(
                *((p[model]["predicted"], p[model]["spread"]) for p in (first, second))
            )
            cell[model] = {
                "predicted": f"{first['variant']} or {second['variant']}"
                if tied
                else first["variant"],
                "tied": tied,
                "agree": first is measured,
                # how close the measured race was: the predicted winner's time over the winner's
                "margin": first["seconds"] / measured["seconds"] - 1,
            }
        out.append(cell)
    return out


def _shape(pt: dict) -> str:
    extra = "".join(f" {k}={v}" for k, v in pt["options"].items())
    return f"{pt['rows']:,} x {pt['features']}{extra}"


def _where(pt: dict) -> str:
    return f"{pt['variant']}, {_shape(pt)}, {pt['workers']} w"


def _errors_table(summary: list[dict]) -> str:
    head = ("job", "engine", "held-out points")
    for model in MODELS:
        head += (f"{model}: median |error|", "worst |error|")
    twice = all("repeats_apart" in e for e in summary)
    rows = []
    for e in summary:
        row = (e["job"], e["engine"], str(e["points"]))
        for model in MODELS:
            row += (f"{e[model]['median']:.0%}", f"{e[model]['worst']:.0%}")
        rows.append((*row, e["sampled"]["worst_at"], *[f"{e['repeats_apart']:.0%}"] * twice))
    head += ("sampled's worst at", *["repeats apart: median"] * twice)
    return text_table([head, *rows])


def write(
    args: argparse.Namespace,
    name: str,
    points: list[dict],
    cals: dict,
    answer: float | None,
    readings: dict[str, tuple[dict, list[dict]]],
    stretches: dict,
) -> None:
    # on a scale model: D as read through the run, and the errors under each reading of it
    # (the tables' own, READ, among them: ``points`` are that reading's)
    read = {e: readings_in_order(e, points, stretches) for e in stretches}
    by_reading = {by: errors(pts) for by, (_, pts) in readings.items()}
    summary, cells = by_reading.get(READ) or errors(points), winners(points)
    at_start = readings["start"][0] if "start" in readings else None
    family = [c for c in cells if c["job"] in FAMILIES]
    called = {m: [c for c in family if not c[m]["tied"]] for m in MODELS}
    agree = {m: sum(c[m]["agree"] for c in called[m]) for m in MODELS}
    out = Path(args.out)
    lines = [
        "# The cost model against held-out measurements",
        "",
        "Command: `.venv/bin/python benchmarks/costmodel.py --engines "
        f"{','.join(args.engines)} --jobs {','.join(args.jobs)} --workers "
        f"{','.join(map(str, args.workers))} --repeat {args.repeat}"
        + (f" --emulate {args.emulate} --link {args.link}`" if args.emulate else "`")
        + (
            "; its measured points kept (`--points FILE`) and priced again by the model as it "
            f"is now (the same command with `--points {args.points}`); what was priced is in "
            f"the .json beside this file, which `--points` prices again alone"
            if args.repriced
            else ""
        ),
        "",
        *([_emulation_line(args, cals, points), ""] if args.emulate else []),
        f"Host: {host_line(args.measured_on)}. Each engine calibrated at "
        f"{','.join(map(str, args.workers))} workers {_calibrated(args, cals)}. Two models of "
        "compute: "
        f"**fitted**, every variant's line (a fixed cost per iteration and a factor on the "
        f"roofline) fitted on its job's first {FITTED} shapes at 1 worker; **sampled**, the "
        "variant's own iteration timed in-process on samples of each point's shape (what "
        "one worker holds at 1, 2, 4, ... workers: its share of the rows, a feature-parallel "
        "tree's share of the columns, ADMM's p shares side by side; down to "
        f"{sample.MIN_ROWS:,} rows, interpolated between: `scaling predict`'s). Both take, "
        "where a library brings its own transport, a factor on it from the first shape at 2 "
        "workers. Times are "
        f"seconds per iteration, medians of {args.repeat} interleaved fits. Error = predicted "
        "/ measured - 1"
        + (
            "; `repeats apart`: a point's slowest repeat over its fastest less 1 (the "
            "measurement's own noise, which the model's error contains)."
            if args.repeat > 1
            else "."
        ),
        "",
        "## Held-out error per job and engine (target: median <= 15%, worst <= 35%)",
        "",
        "```",
        _errors_table(summary),
        "```",
        "",
        *(_dilations(read, by_reading, at_start) if readings else []),
        *(
            [
                f"`scaling predict kmeans --engine {args.engines[0]} --workers 1,2,4,...,1024` "
                f"answers in {answer:.2f} s once calibrated and its samples timed (median of 5, "
                "a new process each).",
                "",
            ]
            if answer is not None
            else []
        ),
        "## Fastest decomposition, predicted and measured, per held-out cell",
        "",
        "SGD strategies and boosted-tree modes (target >= 80%): of "
        f"{len(family)} cells the sampled model names a winner in {len(called['sampled'])} "
        f"and is right in {agree['sampled']} "
        f"({agree['sampled'] / max(len(called['sampled']), 1):.0%}); in the others the two "
        "fastest are predicted within the model's own error "
        f"({costmodel.MODEL_ERROR:.0%}) or their intervals, and it says it cannot tell "
        f"(`a or b`). The fitted model: {agree['fitted']} right of "
        f"{len(called['fitted'])} named. `margin`: the predicted winner's measured time over "
        "the measured winner's (0% when they agree).",
        "",
        "```",
        text_table(
            [("job", "engine", "cell", "measured fastest", *MODELS, "margin (sampled)")]
            + [
                (
                    c["job"],
                    c["engine"],
                    c["cell"],
                    c["measured"],
                    *(c[m]["predicted"] for m in MODELS),
                    f"{c['sampled']['margin']:+.0%}",
                )
                for c in cells
            ]
        ),
        "```",
        "",
        "## Every point",
        "",
        "```",
        text_table(
            [
                (
                    "job",
                    "engine",
                    "variant",
                    "shape",
                    "workers",
                    "measured s/iter",
                    "fitted (modelled)",
                    "sampled (modelled)",
                    "dominant term",
                )
            ]
            + [
                (
                    pt["job"],
                    pt["engine"],
                    pt["variant"],
                    _shape(pt),
                    str(pt["workers"]),
                    f"{pt['seconds']:.4f}",
                    *(
                        f"~{pt[m]['predicted']:.4f} ({pt[m]['error']:+.0%})"
                        + ("" if pt["held_out"] else " fitted")
                        for m in MODELS
                    ),
                    pt["sampled"]["dominant"],
                )
                for pt in points
            ]
        ),
        "```",
        "",
        kept_reading(out / f"{name}.md"),
    ]
    record = {
        "command": lines[2],
        "errors": summary,
        "winners": cells,
        "points": [{k: v for k, v in pt.items() if k != "config"} for pt in points],
        "calibrations": {e: c.to_json() for e, c in cals.items()},
        "predict_seconds": answer,
        "dilations": read,
        "calibrated_apart": args.calibrated_apart,
        **({"dilation_at_start": {e: c.dilation for e, c in at_start.items()}} if at_start else {}),
        "errors_by_dilation": by_reading,
    }
    write_result(out, name, lines, record, args.measured_on)


def _calibrated(args: argparse.Namespace, cals: dict) -> str:
    """When and where the calibrations were measured: in the points' run, or apart."""
    if not args.calibrated_apart:
        return "in the same run"
    return "apart from the points, on a scale model of its own: " + ", ".join(
        f"{e} on {c.host['cpu']} at {c.measured_at}" for e, c in cals.items()
    )


def _emulation_line(args: argparse.Namespace, cals: dict, points: list[dict]) -> str:
    ds = ", ".join(f"{e} {c.dilation:.2f}" for e, c in cals.items())
    where = (
        "on the model's worker machines after its runs (a shape per machine at a time, all "
        "busy), divided by D like the rest"
        if all("machine_samples" in pt for pt in points)
        else "on this host's own core"
    )
    return (
        f"On a scale model of {args.emulate} one-core machines and a head on links of "
        f"{args.link} (`scaling cluster start ENGINE --machines {args.emulate}`, a model per "
        "engine): every time measured there, the calibration's included, is divided by the "
        "model's dilation D as read through the run (the median of the readings, one pair "
        f"each, before and after every shape and the calibration: {ds}), so that every "
        f"number here is the modelled cluster's (emulated). The samples are timed {where}."
    )


def _dilations(read: dict[str, list[float]], by_reading: dict, at_start: dict | None) -> list[str]:
    """How the sampled model's error (``by_reading``: :func:`errors` under each reading of D)
    moves with the reading of D the times are divided by; ``read``: the readings per engine,
    ``at_start``: the calibrations divided by D at start (None: not kept where they were
    priced from)."""
    read = sorted(r for values in read.values() for r in values)
    q = statistics.quantiles(read, n=4) if len(read) > 1 else read * 3
    medians = {
        by: {(e["job"], e["engine"]): e["sampled"]["median"] for e in summary}
        for by, summary in by_reading.items()
    }
    rows = [(*cell, *(f"{medians[by][cell]:.0%}" for by in medians)) for cell in medians[READ]]
    starts = (
        ", ".join(f"{c.dilation:.2f}" for c in at_start.values())
        if at_start
        else "not kept in the results file these were priced from"
    )
    return [
        "## How much the reading of D moves it",
        "",
        f"D read {len(read)} times through the run (one pair each): {read[0]:.2f} to "
        f"{read[-1]:.2f}, quartiles {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f}; at start (the "
        f"fastest of five pairs) {starts}. The sampled model's median |error| over the same "
        "held-out points, their times and the calibration's divided by each reading:",
        "",
        "```",
        text_table([("job", "engine", *(f"D {DILATION_NAMES[by]}" for by in medians)), *rows]),
        "```",
        "",
    ]


DILATION_NAMES = {
    "start": "at start",
    "run": "the run's median (above)",
    "stretch": "its stretch's",
}


def predict_seconds(cal, repeat: int = 5) -> float:
    """Median wall time of ``scaling predict`` to 1,024 workers once calibrated, as a user
    runs it (a new process: its imports included)."""
    scaling = Path(sys.executable).with_name("scaling")
    with tempfile.TemporaryDirectory() as store:
        calibration.save(store, cal)
        command = [str(scaling), "predict", "kmeans", "--engine", cal.engine, "--store", store]
        command += ["--workers", "1,2,4,8,16,32,64,128,256,512,1024"]
        subprocess.run(command, check=True, capture_output=True)  # times the samples, once
        return calibrate.median_seconds(
            lambda: subprocess.run(command, check=True, capture_output=True), repeat
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="ray,dask,spark")
    parser.add_argument(
        "--jobs",
        default="kmeans,logreg,sgd,gbdt",
        help="none (--jobs ''): the calibration alone, kept with --points to price points with",
    )
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument(
        "--points",
        help="keep the measured points in this file, or price those kept there (several: "
        "comma-separated, priced together; a results .json this script wrote holds them too)",
    )
    parser.add_argument(
        "--samples",
        metavar="STORE",
        help="keep the samples' timings in this store and reuse them (default: timed afresh)",
    )
    parser.add_argument("--emulate", type=int, metavar="N", help="on a scale model of N machines")
    parser.add_argument("--link", default="1gbit", help="with --emulate: each machine's link")
    # what --emulate runs on the model's head: measure on the cluster there, keep in --points
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--dilation", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--time-samples", help=argparse.SUPPRESS)  # on a machine: one shape's
    args = parser.parse_args()
    if args.time_samples:
        time_samples(args.time_samples)
        return
    args.engines, args.jobs = args.engines.split(","), [j for j in args.jobs.split(",") if j]
    args.workers = [int(p) for p in args.workers.split(",")]
    if args.address:
        Path(args.points).write_bytes(pickle.dumps(measured(args)))
        return
    kept = [Path(f) for f in (args.points or "").split(",") if f]
    args.repriced = bool(kept) and all(f.exists() for f in kept)
    # what a results .json being priced again says (:func:`_from_results`)
    args.measured_on, args.calibrated_apart, args.start_known = None, False, True
    if args.repriced:  # measured before: price them again, together
        cals, points, stretches = {}, [], {}
        for f in kept:
            if f.suffix == ".json":
                more_cals, more_points, more_stretches, host = _from_results(f, args)
            else:  # a kept run's: its calibration was measured with its points
                more_cals, more_points, more_stretches = _unpickled(f.read_bytes())
                host = next(iter(more_cals.values())).host
            if more_points:  # where they were measured, and their readings of D
                args.measured_on = args.measured_on or host
                stretches |= more_stretches
            else:  # a calibration kept alone: divided by the points' D
                args.calibrated_apart = True
                more_cals = {
                    e: dataclasses.replace(c, dilation=cals[e].dilation) if e in cals else c
                    for e, c in more_cals.items()
                }
            cals, points = cals | more_cals, points + more_points
        cals = {e: refit(c) for e, c in cals.items()}
    else:
        cals, points, stretches = emulated(args) if args.emulate else measured(args)
        if args.points and cals:
            Path(args.points).write_bytes(pickle.dumps((cals, points, stretches)))
        if not points:  # the results already written stay as they were
            sys.exit("costmodel: no point was measured; no results written")
    # on a scale model, every time divided by D as read through the run (READ); the other
    # readings priced beside it, to show how much of the error D's reading holds
    bys = [by for by in DILATIONS if by != "start" or args.start_known]
    readings = {by: redilated(cals, points, stretches, by) for by in bys if stretches}
    cals, points = readings.get(READ, (cals, points))
    with tempfile.TemporaryDirectory() as store:
        for by_cals, by_points in readings.values() or [(cals, points)]:
            predict_all(by_points, by_cals, args.samples or store)
    name = f"costmodel-emulated-{args.emulate}" if args.emulate else "costmodel"
    answer = None if args.emulate else predict_seconds(next(iter(cals.values())))
    write(args, name, points, cals, answer, readings, stretches)
    print((Path(args.out) / f"{name}.md").read_text())


class _Kept(pickle.Unpickler):
    """Points kept before the links moved from the cost model to its patterns' module."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("scaling.model.costmodel", "Link"):
            module = "scaling.model.patterns"
        return super().find_class(module, name)


DILATIONS = ("start", "run", "stretch")
"""Which reading of a scale model's D its times are divided by: the one at start (the fastest
of five pairs), the median of every reading through the run (one pair each, before and after
each shape and calibration), or the median of the five nearest a point's shape in time (the
two either side of its runs and the two before and one after those: its stretch's, which
would follow a drift of some minutes and not one pair's noise, 4.4 to 7.8 at D = 5)."""

READ = "run"
"""The reading the tables are priced with: 50 readings through an 8-machine run showed no
drift to follow (a lag-1 autocorrelation of -0.07; both halves' median 5.59), so the median of
them all, known to about 3%, where the fastest of five at start (5.06) sits below them."""

WINDOW = (2, 3)
"""The stretch's readings: from two before a shape's first to three past it."""


def readings_in_order(engine: str, points: list[dict], stretches: dict) -> list[float]:
    """D as read through an engine's run on a scale model, in order: either side of the
    calibration, then after each shape."""
    seq = list(stretches.get(engine, ()))
    for pt in points:
        if pt["engine"] == engine and pt.get("stretch") and pt["stretch"][0] == seq[-1]:
            seq.append(pt["stretch"][1])
    sampled = {pt["sampled_at"] for pt in points if pt["engine"] == engine and "sampled_at" in pt}
    return [d for d in seq + [d for pair in sampled for d in pair] if d]


def redilated(cals: dict, points: list[dict], stretches: dict, by: str) -> tuple[dict, list]:
    """``cals`` and ``points`` (measured on a scale model, divided by D at start) divided by
    the reading of D named ``by`` instead (:data:`DILATIONS`), the calibrations fitted again."""
    seq = {e: readings_in_order(e, points, stretches) for e in cals}

    def d(engine: str, before: float | None) -> float:
        if by == "start" or before not in seq[engine]:
            return cals[engine].dilation
        if by == "run":
            return statistics.median(seq[engine])
        i = seq[engine].index(before)
        return statistics.median(seq[engine][max(i - WINDOW[0], 0) : i + WINDOW[1]])

    new = {
        e: refit(dataclasses.replace(c, dilation=d(e, (stretches.get(e) or [None])[0])))
        for e, c in cals.items()
    }
    moved = []
    for pt in points:
        start, engine = cals[pt["engine"]].dilation, pt["engine"]
        by_d = start / d(engine, pt.get("stretch", [None])[0])
        by_sampled = start / d(engine, pt["sampled_at"][0]) if "sampled_at" in pt else 1.0
        moved.append(_scaled(pt, by_d, by_sampled))
    return new, moved


def _scaled(pt: dict, by: float, by_sampled: float) -> dict:
    """``pt`` with its measured times multiplied by ``by``, its samples' by ``by_sampled``."""
    out = {**pt, **{k: pt[k] * by for k in ("seconds", "compute", "communication")}}
    if "repeats" in pt:
        out["repeats"] = [r * by for r in pt["repeats"]]
    if "machine_samples" in pt:
        out["machine_samples"] = [
            {**s, "compute": s["compute"] * by_sampled} for s in pt["machine_samples"]
        ]
    return out


def samples_on_machines(model, points: list[dict]) -> None:
    """Each point's samples timed on the scale model's own machines (``machine_samples``,
    divided by D at start like the point's times; ``sampled_at``: D read just before and
    after), as Ernest samples on the cluster's machines: a machine's core runs each kernel at
    a speed of its own relative to this host's (k-means' 6.2 times slower, logistic
    regression's 4.8, where the reference read 4.5: ``dilation.md``), which samples timed
    here would carry into the error. The machines take a shape each at a time, all busy."""
    shapes: dict[tuple, list[dict]] = {}
    for pt in points:
        shapes.setdefault((pt["job"], pt["config"], pt["rows"], pt["features"]), []).append(pt)
    order = sorted(shapes, key=lambda k: -k[2] * k[3])  # the largest first: they finish alike
    with tempfile.TemporaryDirectory() as tmp:
        argvs = []
        for i, key in enumerate(order):
            (path := Path(tmp) / f"{i}.pickle").write_bytes(pickle.dumps(key))
            argvs.append([sys.executable, __file__, "--time-samples", str(path)])
        before = model.read_dilation()
        with tqdm(total=len(argvs), desc="samples on the machines") as bar:
            timed = model.on_workers(argvs, bar.update)
        after = model.read_dilation()
    for key, out in zip(order, timed, strict=True):
        for pt in shapes[key]:
            pt["machine_samples"] = [
                {**s, "compute": s["compute"] / model.dilation}
                for s in json.loads(out.splitlines()[-1])  # below what the libraries print
            ]
            pt["sampled_at"] = (before, after)


def time_samples(path: str) -> None:
    """What :func:`samples_on_machines` runs on a machine: the samples of the shape pickled
    at ``path``, timed afresh, printed as JSON."""
    name, config, rows, features = pickle.loads(Path(path).read_bytes())
    with tempfile.TemporaryDirectory() as store:
        timed = sample.measure(store, get_job(name), config, rows, features, say=lambda _: None)
    print(json.dumps([dataclasses.asdict(s) for s in timed]))


def _unpickled(data: bytes) -> tuple[dict, list[dict], dict]:
    """Calibrations, points and the calibrations' stretches of D (none kept before them)."""
    import io

    cals, points, *stretches = _Kept(io.BytesIO(data)).load()
    return cals, points, (stretches or [{}])[0]


def _from_results(path: Path, args: argparse.Namespace) -> tuple[dict, list[dict], dict, dict]:
    """What a results file this script wrote holds, as a kept points file holds it:
    calibrations, points (their configs made again from ``args``, as measured) and the
    calibrations' stretches of D; and the host the points were measured on. Its times are
    divided by the reading of D it was priced with; they are put back to D at start where the
    file kept that (``dilation_at_start``)."""
    record = json.loads(path.read_text())
    cals = {e: _calibration(c) for e, c in record["calibrations"].items()}
    start = record.get("dilation_at_start") or {e: c.dilation for e, c in cals.items()}
    points = []
    for pt in record["points"]:
        back = cals[pt["engine"]].dilation / start[pt["engine"]]
        config = _configs(args, pt["job"], pt["options"])[pt["variant"]]
        kept = {k: v for k, v in pt.items() if k not in (*MODELS, "held_out")}
        kept |= {k: tuple(pt[k]) for k in ("stretch", "sampled_at") if k in pt}  # as pickled
        points.append(_scaled(kept, back, back) | {"config": config})
    cals = {e: dataclasses.replace(c, dilation=start[e]) for e, c in cals.items()}
    args.start_known = "dilation_at_start" in record
    args.calibrated_apart |= record.get("calibrated_apart", False)
    stretches = {e: tuple(read[:2]) for e, read in record["dilations"].items()}
    return cals, points, stretches, record["host"]


def _calibration(text: str):
    """A calibration kept in a results file, without what the model no longer reads (the
    ``syncs`` of one kept before the links were timed after work)."""
    known = {f.name for f in dataclasses.fields(calibration.Calibration)}
    kept = {k: v for k, v in json.loads(text).items() if k in known}
    return calibration.Calibration.from_json(json.dumps(kept))


def refit(cal):
    """``cal`` fitted again from its measured points, as the model fits them now (and still
    saying when they were measured)."""
    points = list(cal.points.values())
    fitted = calibration.fit(cal.engine, cal.versions.get(cal.engine, ""), points, cal.dilation)
    return dataclasses.replace(fitted, measured_at=cal.measured_at)


def measured(args: argparse.Namespace) -> tuple[dict, list[dict]]:
    """Each engine calibrated and every point measured, on this host's workers or on the
    cluster at ``--address`` (slowed by ``--dilation``)."""

    def connect(name: str, p: int):
        return make_engine(name, p, address=args.address)

    cals, stretches = {}, {}
    for e in args.engines:
        before = dilation_now()
        cals[e] = calibrate.calibrate(
            e, args.workers, make=connect, say=print, dilation=args.dilation
        )
        stretches[e] = (before, dilation_now())
    if not args.address:
        return cals, measure_all(args), {}
    kept = Path(args.points)  # on a scale model's head: what is measured so far, kept as it goes

    def keep(points: list[dict]) -> None:
        kept.write_bytes(pickle.dumps((cals, points, stretches)))

    keep([])  # the calibration, before any point: a run that ends early keeps it
    return cals, measure_all(args, keep, stretches[args.engines[-1]][1]), stretches


def emulated(args: argparse.Namespace) -> tuple[dict, list[dict]]:
    """Per engine, a scale model of ``--emulate`` machines, this script run on its head to
    measure there (:func:`measured`), and the model removed, whatever happened."""
    cals, points, stretches = {}, [], {}
    for engine in args.engines:
        with (
            scale_model(engine, args.emulate, args.link) as model,
            tempfile.NamedTemporaryFile(suffix=".pickle") as kept,
        ):
            argv = [sys.executable, __file__, "--engines", engine, "--jobs",
                    ",".join(args.jobs), "--workers", ",".join(map(str, args.workers)),
                    "--repeat", str(args.repeat), "--emulate", str(args.emulate),
                    "--address", model.address, "--dilation", str(model.dilation),
                    "--points", kept.name]  # fmt: skip
            if model.on_head(argv) != 0:
                print(f"{engine}: the run on the scale model failed; what it measured is kept")
            if not Path(kept.name).stat().st_size:
                continue
            engine_cals, measured_points, engine_stretches = _unpickled(
                Path(kept.name).read_bytes()
            )
            try:
                if measured_points:
                    samples_on_machines(model, measured_points)
            except (OSError, RuntimeError, ValueError) as e:  # what was measured is kept
                print(f"{engine}: the samples on the machines failed, timed here instead: {e}")
        cals |= engine_cals
        points += measured_points
        stretches |= engine_stretches
    return cals, points, stretches


if __name__ == "__main__":
    main()
