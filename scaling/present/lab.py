"""What the notebooks run, a few lines a cell: a job's step functions shown from the code, the
job on every engine against the single-machine run, a small sweep's curves, the split and one
iteration's timeline, the cost model's curve beside the measured points, the decompositions
side by side, the jobs' decompositions and the sweeps' summary (COST) for the overview, and
the interview answers, citing the runs just made.

Every function returns what it shows (text, or a PNG image for the notebook to display), so
that the notebooks hold no logic of their own; their runs go to one results store, which the
answers then cite. A failed run stops the cell with its error.
"""

from __future__ import annotations

import atexit
import dataclasses
import inspect
import logging
import os
import warnings
from pathlib import Path

from scaling.present.text import text_table
from scaling.run.pool import Clusters
from scaling.run.runner import run_job
from scaling.run.spec import RunSpec
from scaling.run.sweep import SweepPlan, sweep_all

# In a notebook Ray asks for ipywidgets (an INFO line) and tqdm warns it has no widgets: the
# notebooks show tables and plots, not progress bars.
logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message="IProgress not found")


def _notebook_slot(engine: str, workers: int) -> tuple:
    """Clusters kept by engine, and Dask's and the local engine's by worker count too (a
    sweep's 1- and 2-worker points and the check's side by side); Ray's and Spark's one at a
    time, as a process holds one."""
    return engine, workers if engine in ("dask", "local") else None


_OPEN = Clusters(slot=_notebook_slot)
"""The notebooks' clusters, open for the kernel's life as a notebook keeps its ``ray.init()``
and its SparkSession: starting them is most of the every-engine check's time (Ray 6 s, Spark
15 s on 2 cores), and a kernel that runs several notebooks starts each once. Idle beside a
Dask sweep, Ray's and Spark's left its medians at 1.01x and 1.04x (1 and 2 workers), within
the trials' noise (``benchmarks/results/idle_engines.md``). They close when the kernel
exits."""


_CALIBRATIONS: dict = {}
"""The engines calibrated in this kernel (a fact of the host, not of a notebook): each
notebook's store gets a copy, and a kernel that runs several notebooks calibrates once."""


def store(name: str) -> str:
    """Where notebook ``name`` keeps its runs: a store of its own (its answers cite its runs
    alone) under ``SCALING_NOTEBOOK_STORE`` (default ``results``, beside the notebooks)."""
    return os.path.join(os.environ.get("SCALING_NOTEBOOK_STORE", "results"), name)


@atexit.register
def close() -> None:
    """Close the notebooks' clusters (the kernel's exit does it too)."""
    _OPEN.close()


def step_sources(job, config, workers: int = 2) -> str:
    """The source of every step's function, in the order one iteration runs them (the
    functions ``scaling explain`` names, so what is shown is what runs)."""
    from scaling.model.steps import function_of

    out, shown = [], set()
    for step in job.explain(100_000, 16, workers, config):
        head = f"# {step.kind}: {step.function} ({step.where})"
        if step.function in shown:  # one function doing two steps (a library's training)
            out.append(f"{head}: the function above\n")
            continue
        shown.add(step.function)
        out.append(f"{head}\n{inspect.getsource(function_of(job.name, step.function))}")
    return "\n".join(out)


def on_every_engine(
    job, config, source, engines, workers: int = 2, rtol: float = 0.0, atol: float = 0.0
) -> str:
    """The job on each engine at ``workers`` workers against the same job in one process
    (the local engine, one worker): a table of the headline quality, and whether it agrees,
    ``|value - reference| <= atol + rtol * |reference|``."""

    def quality(engine: str, workers: int) -> float:
        run = run_job(
            RunSpec(job=job, engine=engine, workers=workers, source=source, config=config),
            clusters=_OPEN,
        )
        return run.record["quality"][job.headline]

    reference = quality("local", 1)
    bound = atol + rtol * abs(reference)
    rows = [("engine", "workers", job.headline, "single machine", f"within {bound:.3g}")]
    for engine in engines:
        value = quality(engine, workers)
        agrees = abs(value - reference) <= bound
        rows.append((engine, str(workers), f"{value:.10g}", f"{reference:.10g}", str(agrees)))
    return text_table(rows)


def _sweeps(plans, store) -> list[list[dict]]:
    """Run ``plans`` into ``store`` (on the engine's open clusters); each one's records. A
    failed run stops the notebook with its error: a curve with a hole in it would mislead."""
    done = [records for _, records in sweep_all(plans, store, progress=False, clusters=_OPEN)]
    for records in done:
        _all_ok(records)
    return done


def _all_ok(records: list[dict]) -> list[dict]:
    for r in (r for r in records if r["status"] != "ok"):
        raise RuntimeError(f"{r['job']} on {r['engine']} x{r['workers']} failed: {r['error']}")
    return records


def sweep(job, config, store, engine: str, workers=(1, 2), rows: int = 50_000, **options):
    """A sweep into ``store`` (strong unless ``mode="weak"``), with the single-thread
    baseline; its records."""
    plan = SweepPlan(
        job=job, config=config, engines=(engine,), workers=tuple(workers), sizes=(rows,),
        **options,
    )  # fmt: skip
    return _sweeps([plan], store)[0]


def emulated_sweep(
    job, config, store, engine: str, machines: int = 4, rows: int = 50_000, features: int = 16,
    link: str = "1gbit",
) -> list[dict]:  # fmt: skip
    """A strong sweep at 1, 2, 4 ... ``machines`` workers on a scale model of ``machines``
    one-core machines (``scaling sweep JOB --emulate``, built around it and removed after);
    its records, whose times are the modelled cluster's (``emulated (D x)``). Where this host
    cannot build one (root, a CPU cgroup controller), one line says why and the sweep runs
    on this host's workers instead, its 2-worker point sharing the cores with the driver."""
    import subprocess
    import sys

    from scaling.results import load
    from scaling.run.machines import why_not

    if reason := why_not():
        print(f"no scale model here ({reason}): the sweep runs on this host's cores")
        return sweep(job, config, store, engine, rows=rows, features=features, baseline=False)
    counts = [2**i for i in range(machines.bit_length()) if 2**i < machines] + [machines]
    options = [
        word
        for f in dataclasses.fields(config)  # each a --option of `scaling sweep JOB`
        for word in (f"--{f.name.replace('_', '-')}", str(getattr(config, f.name)))
    ]
    argv = [
        "sweep", job.name, "--emulate", str(machines), "--link", link, "--engines", engine,
        "--workers", ",".join(map(str, counts)), "--rows", str(rows), "--features",
        str(features), "--no-baseline", "--out", str(store), *options,
    ]  # fmt: skip
    before = {r["sweep_id"] for r in load(store).records} if Path(store).exists() else set()
    done = subprocess.run(
        [sys.executable, "-m", "scaling.cli", *argv], capture_output=True, text=True
    )
    records = _all_ok([r for r in load(store).records if r["sweep_id"] not in before])
    if done.returncode != 0 or not records:
        raise RuntimeError(f"scaling {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    d = records[0]["emulation"]["dilation"]
    print(f"a scale model of {machines} one-core machines and a head, {link} links, dilated "
          f"{d:.2f}x: every time shown is the measured time / {d:.2f} (emulated)")  # fmt: skip
    return records


def curves_png(records, kind: str) -> bytes:
    """One of the report's plots (``speedup``, ``throughput``, ``split``) of ``records``."""
    from scaling.present.figures import curves
    from scaling.present.plots import plot, png

    return png(plot(kind, curves(records)))


def timeline_png(records) -> bytes:
    """The median iteration at the most workers, bar by bar, as the report draws it."""
    from scaling.present.figures import curves
    from scaling.present.plots import png, timeline_plot

    return png(timeline_plot(curves(records)))


def predicted_png(job, config, store, engine: str, rows: int, features: int, records) -> bytes:
    """The cost model's curve to 1,024 workers on ``engine`` (calibrated here once, kept in
    ``store``), its speedup beside the measured points of ``records`` (drawn as points)."""
    from scaling.model import calibration, costmodel
    from scaling.present.figures import curves
    from scaling.present.plots import png, prediction_plot
    from scaling.run import calibrate

    cal = calibration.load(store, engine) or _CALIBRATIONS.get(engine)
    if cal is None:
        cal = calibrate.calibrate(engine, [1, 2], repeat=5)
    _CALIBRATIONS[engine] = cal
    calibration.save(store, cal)  # where the answers look for it
    workers = [2**i for i in range(11)]
    result, _ = costmodel.curve(job, config, rows, features, workers, cal, records)
    fig = prediction_plot(f"{job.name} on {engine}, {rows:,} x {features} (modelled)", result)
    speedup = fig.axes[1]
    for c in curves(records):
        points = [p for p in c.points if p.speedup is not None]
        speedup.plot(
            [p.workers for p in points], [p.speedup for p in points], "o",
            label=f"{c.clock}, {c.label or c.engine}",
        )  # fmt: skip
    speedup.legend(loc="upper left", fontsize="small")
    return png(fig)


def variants(
    job, config, store, engine: str, rows: int, features: int = 16, workers: int = 2,
    variants: dict[str, dict] | None = None, init: bool = False,
) -> str:  # fmt: skip
    """Every decomposition of the job (``variants``, by default
    :attr:`scaling.job.Job.variants`) on ``engine`` at ``workers``, each a sweep of one point
    into ``store`` (so the answers can cite them): iterations, time per iteration, what an
    iteration moved, and the headline quality (and with ``init`` the seconds the
    initialisation took)."""
    from scaling.present.figures import run_figures
    from scaling.units import si

    variants = job.variants if variants is None else variants
    point = {"engines": (engine,), "workers": (workers,), "sizes": (rows,), "features": features}
    plans = [
        SweepPlan(job=job, config=dataclasses.replace(config, **options), baseline=False, **point)
        for options in variants.values()
    ]
    records = [record for (record,) in _sweeps(plans, store)]
    rows_ = [("decomposition", *["init s"] * init, "iterations", "s/iter", "bytes/iter")]
    rows_[0] += (job.headline,)
    for name, record in zip(variants, records, strict=True):
        f = run_figures(record)
        moved = f"{'~' if f.modelled('bytes') else ''}{si(f.bytes, 'B')}"
        first = [f"{record['timings']['init']:.3f}"] * init
        rows_.append(
            (name, *first, str(f.iterations), f"{f.seconds:.4f}", moved, f"{f.headline[1]:.6g}")
        )
    return text_table(rows_)


def decompositions(jobs, rows: int, features: int, workers: int) -> str:
    """Each job's map, combine and update (where each runs) and the bytes one iteration moves
    at this shape, all workers together (modelled: the jobs' ``explain`` formulas)."""
    from scaling.model.steps import moved
    from scaling.units import si

    out = [("job", "map", "combine", "update", "moves per iteration (modelled)")]
    for job in jobs:
        steps = job.explain(rows, features, workers, job.demo_config)
        where = {s.kind: s.where for s in reversed(steps)}  # the first step of each kind
        out.append(
            (job.name, where.get("map", "-"), where.get("combine", "-"), where.get("update", "-"),
             si(sum(moved(steps, workers)), "B"))
        )  # fmt: skip
    return text_table(out)


def summary(records, store) -> str:
    """The demo's summary table of ``records``: speedup and efficiency at the most workers,
    COST against the single-thread baseline, the headline quality."""
    from scaling.present.text import summary_rows

    return text_table(summary_rows(records, store))


def answers(job, config, store, questions=None, **shape) -> str:
    """``scaling interview`` on ``store``: the answers (all, or the numbers ``questions``)."""
    from scaling.present import interview
    from scaling.present.answers import Ask

    ask = Ask(
        job, config, shape.get("rows", 1_000_000), shape.get("features", 32),
        shape.get("workers", 16), Path(store),
    )  # fmt: skip
    return interview.render(ask, interview.interview(ask), questions)
