"""What the notebooks run, a few lines a cell: a job's step functions shown from the code, the
job on every engine against the single-machine run, a small sweep's curves, the split and one
iteration's timeline, the cost model's curve beside the measured points, the decompositions
side by side, and the interview answers, citing the runs just made.

Every function returns what it shows (text, or a PNG image for the notebook to display), so
that the notebooks hold no logic of their own; their runs go to one results store, which the
answers then cite.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import warnings
from pathlib import Path

from scaling.report import text_table

# In a notebook Ray asks for ipywidgets (an INFO line) and tqdm warns it has no widgets: the
# notebooks show tables and plots, not progress bars.
logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message="IProgress not found")


def step_sources(job, config, workers: int = 2) -> str:
    """The source of every step's function, in the order one iteration runs them (the
    functions ``scaling explain`` names, so what is shown is what runs)."""
    from scaling.explain import function_of

    out = []
    for step in job.explain(100_000, 16, workers, config):
        fn = function_of(job.name, step.function)
        out.append(f"# {step.kind}: {step.function} ({step.where})\n{inspect.getsource(fn)}")
    return "\n".join(out)


def on_every_engine(job, config, source, engines, workers: int = 2, rtol: float = 1e-9) -> str:
    """The job on each engine at ``workers`` workers against the same job in one process
    (the local engine, one worker): a table of the headline quality, and whether it agrees
    within ``rtol``."""
    from scaling.runner import run_job

    reference = run_job(job, "local", 1, source, config).record["quality"][job.headline]
    rows = [("engine", "workers", job.headline, "single machine", "agrees")]
    for engine in engines:
        value = run_job(job, engine, workers, source, config).record["quality"][job.headline]
        agrees = abs(value - reference) <= rtol * abs(reference)
        rows.append((engine, str(workers), f"{value:.10g}", f"{reference:.10g}", str(agrees)))
    return text_table(rows)


def sweep(job, config, store, engine: str, workers=(1, 2), rows: int = 50_000, **options):
    """A strong-scaling sweep into ``store``; its records."""
    from scaling.runner import SweepPlan
    from scaling.runner import sweep as run_sweep

    plan = SweepPlan(
        job=job, config=config, engines=(engine,), workers=tuple(workers), sizes=(rows,),
        **options,
    )  # fmt: skip
    _, records = run_sweep(plan, store, progress=False)
    return records


def curves_png(records, kind: str) -> bytes:
    """One of the report's plots (``speedup``, ``throughput``, ``split``) of ``records``."""
    from scaling.figures import curves
    from scaling.report import plot, png

    return png(plot(kind, curves(records)))


def timeline_png(records) -> bytes:
    """The median iteration at the most workers, bar by bar, as the report draws it."""
    from scaling.figures import curves
    from scaling.report import png, timeline_plot

    return png(timeline_plot(curves(records)))


def predicted_png(job, config, store, engine: str, rows: int, features: int, records) -> bytes:
    """The cost model's curve to 1,024 workers on ``engine`` (calibrated here once, kept in
    ``store``), its speedup beside the measured points of ``records`` (drawn as points)."""
    from scaling import calibration, costmodel
    from scaling.figures import curves
    from scaling.report import png, prediction_plot

    cal = calibration.load(store, engine)
    if cal is None:
        cal = calibration.calibrate(engine, [1, 2], repeat=5)
        calibration.save(store, cal)
    workers = [2**i for i in range(11)]
    result, _ = costmodel.curve(job, config, rows, features, workers, cal, records)
    fig = prediction_plot(f"{job.name} on {engine}, {rows:,} x {features} (modelled)", result)
    speedup = fig.axes[1]
    for c in curves(records):
        points = [p for p in c.points if p.speedup is not None]
        speedup.plot(
            [p.workers for p in points], [p.speedup for p in points], "o",
            label=f"measured, {c.label or c.engine}",
        )  # fmt: skip
    speedup.legend(loc="upper left", fontsize="small")
    return png(fig)


def variants(job, config, source, engine: str, workers: int = 2) -> str:
    """Every decomposition of the job (:attr:`scaling.job.Job.variants`) on ``engine``: time
    per iteration, what an iteration moved, and the headline quality."""
    from scaling.figures import run_figures
    from scaling.report import si
    from scaling.runner import run_job

    rows = [("decomposition", "s/iter", "bytes/iter", job.headline)]
    for name, options in job.variants.items():
        record = run_job(job, engine, workers, source, dataclasses.replace(config, **options))
        f = run_figures(record.record)
        moved = f"{'~' if f.modelled('bytes') else ''}{si(f.bytes, 'B')}"
        rows.append((name, f"{f.seconds:.4f}", moved, f"{f.headline[1]:.6g}"))
    return text_table(rows)


def answers(job, config, store, questions=None, **shape) -> str:
    """``scaling interview`` on ``store``: the answers (all, or the numbers ``questions``)."""
    from scaling import interview

    ask = interview.Ask(
        job, config, shape.get("rows", 1_000_000), shape.get("features", 32),
        shape.get("workers", 16), Path(store),
    )  # fmt: skip
    return interview.render(ask, interview.interview(ask), questions)
