"""``scaling interview JOB``: model answers to the system-design questions about a job, every
number in them traceable.

An answer is prose around *figures*. Each figure is a number and its source: a formula (a
step of the job's ``explain`` at some shape, its parameter count, the cost model's curve on a
calibrated engine) or the records of a results store (a run's field, or the median time per
iteration of the runs at two worker counts). Printed, a figure carries a reference (``[3]``)
to its source under the answer; ``--json`` gives the source as data, which is what the tests
resolve, figure by figure, against the records and the formulas.

The questions every job answers (:data:`QUESTIONS`): the decomposition; complexity, the
parameter count and compute; where scaling stops and why; the alternatives and when each
wins; a dead or slow worker. Then the job's own (``answers`` in the ``interview`` module of the
job's package, :func:`own_answers`): the ones interviews ask about it, and one follow-up with its
answer.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Collection

from scaling.present.answers import CURVE, Answer, Ask, plain_value

QUESTIONS = (
    "How does it map-reduce: what runs where, and what moves in each step?",
    "What are its complexity, parameter count and compute per iteration?",
    "Where does scaling stop, and why?",
    "What are the alternatives, and when does each win?",
    "What happens when a worker dies or straggles?",
)


# ---------------------------------------------------------------- the questions


def interview(ask: Ask) -> list[Answer]:
    """Every answer about ``ask.job``: :data:`QUESTIONS`, then the job's own."""
    return [
        _decomposition(ask),
        _complexity(ask),
        _limits(ask),
        _alternatives(ask),
        _failures(ask),
        *own_answers(ask),
    ]


def own_answers(ask: Ask) -> list[Answer]:
    """The answers to the job's own questions: ``answers(ask)`` of the ``interview`` module in
    the job's package, where it has one."""
    package = type(ask.job).__module__
    if importlib.util.find_spec(f"{package}.interview") is None:
        return []
    return importlib.import_module(f"{package}.interview").answers(ask)


def _decomposition(ask: Ask) -> Answer:
    a = Answer(QUESTIONS[0])
    p = ask.workers
    execution = ask.job.execution(ask.config)
    style = (
        "the driver holds the loop and makes one engine call per step (the MapReduce style)"
        if execution == "driver"
        else "the workers hold the loop inside one gang call and combine among themselves "
        "(the all-reduce style)"
    )
    a.say(
        f"One iteration is {len(ask.steps(p))} named steps; {style}. On "
        f"{ask.rows:,} rows x {ask.features} features and {p} workers:"
    )
    for s in ask.steps(p):
        work = ask.step(a, s.kind, "flops")
        sends = ask.step(a, s.kind, "sends") if s.sends else "nothing"
        where = f"{s.kind} ({s.function}, {s.where})"
        a.say(f"- {where}: {s.does}. Work of the busiest: {work}; each sends {sends}.")
    a.say(
        "Each worker keeps its partitions in memory from one iteration to the next: what an "
        "iteration moves is partial results and the model, sized by the model, not the rows."
    )
    return a


def _complexity(ask: Ask) -> Answer:
    a = Answer(QUESTIONS[1])
    p = ask.workers
    a.say(
        f"The model holds {ask.parameters(a)} numbers at {ask.features} features. The map "
        f"step's work is {ask.step(a, 'map', 'flops', 1)} per iteration on one worker and "
        f"{ask.step(a, 'map', 'flops', p)} on each of {p}: it divides by p. An iteration "
        f"moves {ask.step(a, '*', 'moved', p)} in all at {ask.rows:,} rows and "
        f"{ask.step(a, '*', 'moved', p, rows=10 * ask.rows)} at ten times the rows, while "
        f"the map's work grows to {ask.step(a, 'map', 'flops', p, rows=10 * ask.rows)}."
    )
    if ask.job.explain_note:
        a.say(ask.job.explain_note)
    return a


def _limits(ask: Ask) -> Answer:
    a = Answer(QUESTIONS[2])
    few, many = ask.workers, CURVE[-1]
    a.say(
        f"Strong scaling stops where the shrinking compute meets the costs that do not shrink. "
        f"The busiest worker's work falls from {ask.step(a, '*', 'flops', 1)} at one worker "
        f"to {ask.step(a, '*', 'flops', few)} at {few} and "
        f"{ask.step(a, '*', 'flops', many)} at {many}, but an iteration still moves "
        f"{ask.step(a, '*', 'moved', few)} at {few} and {ask.step(a, '*', 'moved', many)} at "
        f"{many} workers (every worker's share, whatever the rows), and every step pays the "
        "engine's fixed cost per call (or per all-reduce), whatever the work."
    )
    for engine in ask.calibrations:
        curve = ask.predicted(engine)
        best, under = curve["best_workers"], curve["efficiency_under_half_at"]
        words = (
            f"On {engine}, as calibrated on this host, the cost model puts the fastest point "
            f"at p = {ask.prediction(a, engine, 'best_workers', best)}"
        )
        if under is not None:
            words += (
                ", and efficiency falls under one half from "
                f"p = {ask.prediction(a, engine, 'efficiency_under_half_at', under)}"
            )
        a.say(words + f" ({', '.join(_dominants(curve))}).")
    if not ask.calibrations:
        a.say(
            f"No engine is calibrated in {ask.store}: `scaling predict {ask.job.name} "
            "--engine ray` measures one and answers how many workers pay (modelled)."
        )
    measured = [c for c in ask.scaling_curves() if c.mode == "strong" and len(c.points) > 1]
    for c in measured[-4:]:  # the latest few
        last = c.points[-1]
        if last.speedup is None:
            continue
        a.say(
            f"Measured on {c.engine} ({c.execution}, {c.size:,} rows, sweep {c.sweep_id}): "
            f"{ask.speedup(a, c, last.workers)} at {last.workers} workers, median of "
            f"{last.repeats} run{'s' * (last.repeats != 1)}."
        )
    from scaling.present.figures import cores_note

    if measured and (note := cores_note(ask.records)):
        a.say(note)
    return a


def _dominants(curve: dict) -> list[str]:
    """Which term dominates where, in words: 'compute to 16 workers, overhead beyond'."""
    out, last = [], None
    for row in curve["rows"]:
        if row["dominant"] != last:
            out.append(f"{row['dominant']} from {row['workers']}")
            last = row["dominant"]
    return [f"dominant term: {out[0]}", *out[1:]]


def _alternatives(ask: Ask) -> Answer:
    a = Answer(QUESTIONS[3])
    p = ask.workers
    if len(ask.job.variants) < 2:
        a.say(f"{ask.job.name} has one decomposition here.")
        return a
    lines = []
    for name in ask.job.variants:
        line = (
            f"- {name}: an iteration moves {ask.step(a, '*', 'moved', p, name)}; its busiest "
            f"process does {ask.step(a, '*', 'flops', p, name)}."
        )
        if run := ask.variant_run(name):
            headline = run["headline"]
            line += (
                f" Measured on {run['engine']}, {run['rows']:,} rows, {run['workers']} "
                f"workers: {ask.record(a, run, 'timings.per_iteration', 's')} per iteration, "
                f"{headline} {ask.record(a, run, f'quality.{headline}', '')}."
            )
        lines.append(line)
    a.say(f"At {ask.rows:,} rows x {ask.features} features and {p} workers:")
    a.paragraphs += lines
    a.say(
        "Bytes are not the whole story: an iteration of one decomposition is not an iteration "
        "of another (a Newton step does the work of many gradient steps; a tree of rows is not "
        "a tree of features), so compare time to the same quality."
    )
    from scaling.present.figures import winners

    for w in winners(ask.scaling_curves())[-4:]:
        run = _fastest_run(ask, w)
        if run is not None:
            a.say(
                f"Measured, {w['cell']}: {w['measured']} was fastest, "
                f"{ask.record(a, run, 'timings.per_iteration', 's')} per iteration"
                + _predicted(w)
                + "."
            )
    return a


def _predicted(winner: dict) -> str:
    """What the cost model said of the race (modelled), with its margin."""
    if winner["predicted"] is None:
        return ""
    if winner["tied"]:
        return (
            f"; the cost model (modelled) cannot tell {winner['predicted']} apart: "
            f"{winner['margin']:.0%} apart, within its own error"
        )
    return (
        f"; the cost model predicted {winner['predicted']} (modelled), "
        f"{winner['margin']:.0%} ahead of the next"
    )


def _fastest_run(ask: Ask, winner: dict) -> dict | None:
    """The run behind a measured winner: the one whose time per iteration it is."""
    from scaling.present.figures import run_figures

    return next((r for r in ask.records if run_figures(r).seconds == winner["seconds"]), None)


def _failures(ask: Ask) -> Answer:
    a = Answer(QUESTIONS[4])
    if ask.job.execution(ask.config) == "driver":
        a.say(
            "Each step is a function of a partition and the model, and a partition is a spec "
            "(a seed and a row range, or a file and a row range): its lineage. When a worker "
            "dies, Ray starts a new actor and Dask's nanny a new worker, its partitions are "
            "read again from their specs and the step runs again; Spark re-runs the task "
            "itself (its lineage). The result is the undisturbed run's, as "
            "`--kill-worker-at` shows; past `--max-failures` the run fails in one line."
        )
    else:
        a.say(
            "The loop lives inside one gang: a dead member breaks the collective for all. "
            "The engine replaces the worker, re-reads its partitions and starts the gang "
            "again, its collective set up afresh; boosted trees go on from their last "
            "checkpoint (`--checkpoint-every`), so a death costs the rounds since it."
        )
    a.say(
        "A frozen worker is caught by the step deadline (`--step-timeout`). A slow one "
        "(a straggler) holds every synchronous step back: the step takes the slowest "
        "worker's time, which is why the cost model carries a straggle term, and why "
        "asynchronous schemes (a parameter server, local SGD) trade staleness for it."
    )
    for engine, cal in ask.calibrations.items():
        a.say(
            f"On {engine} here, equal tasks spread by "
            f"{a.figure(cal.straggle, '%', {'calibration': engine, 'field': 'straggle'})} "
            "of their time (measured by `scaling calibrate`)."
        )
    for r in ask.records:
        for i, f in enumerate(r.get("failures", [])):
            if f.get("detected") is not None and f.get("recovery") is not None:
                a.say(
                    f"Measured: in run {r['run_id']} on {r['engine']}, a lost worker was "
                    f"known after {ask.record(a, r, f'failures.{i}.detected', 's')} and "
                    f"replaced in {ask.record(a, r, f'failures.{i}.recovery', 's')}: {f['how']}."
                )
                return a
    return a


def render(ask: Ask, answers: list[Answer], only: int | Collection[int] | None = None) -> str:
    """The answers as text (``only``: those of these numbers): each question, its
    paragraphs, then its figures' sources (a formula's as it differs from the shape and
    config asked about)."""
    if isinstance(only, int):
        only = {only}
    base = {k: v for k, v in dataclasses.asdict(ask.config).items() if plain_value(v)}
    options = ", ".join(f"{k}={v}" for k, v in sorted(base.items()))
    out = [
        f"{ask.job.name}: {ask.rows:,} rows x {ask.features} features, {ask.workers} workers "
        f"unless said; formulas are the job's `scaling explain` steps ({options})",
        "",
    ]
    for n, a in enumerate(answers, 1):
        if only is not None and n not in only:
            continue
        out += [f"Q{n}. {a.question}", ""]
        out += [p + "\n" for p in a.paragraphs]
        if a.figures:
            out.append("  where the numbers come from:")
            out += [f"  [{f.ref}] {_describe(f.source, ask, base)}" for f in a.figures]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


WHAT = {
    "flops": "work of the busiest process",
    "sends": "bytes one sends",
    "moved": "bytes moved, all workers",
    "repeats": "messages",
}


def _describe(source: dict, ask: Ask, base: dict) -> str:
    if source.get("formula") == "explain":
        step = "the iteration" if source["step"] == "*" else f"the {source['step']} step"
        p = source["workers"]
        differs = [f"{p} worker{'s' * (p != 1)}"]
        if source["rows"] != ask.rows:
            differs.append(f"{source['rows']:,} rows")
        if source["features"] != ask.features:
            differs.append(f"{source['features']} features")
        if source["job"] != ask.job.name:  # a comparison: another job's defaults
            step = f"{source['job']}'s {step.removeprefix('the ')} at its defaults"
        else:
            config = sorted(source["config"].items())
            differs += [f"{k}={v}" for k, v in config if base.get(k) != v]
        return f"formula (modelled): {step}, {WHAT[source['field']]}; {', '.join(differs)}"
    if source.get("formula") == "data":
        return "formula: rows x features x 8 bytes (float64) / workers"
    if source.get("formula") == "parameters":
        return f"formula: {source['job']}'s parameter count at {source['features']} features"
    if source.get("formula") == "predict":
        return (
            f"modelled: `scaling predict {source['job']} --engine {source['engine']} "
            f"--rows {source['rows']} --features {source['features']}`, its {source['field']}"
        )
    if "calibration" in source:
        return f"measured: {source['calibration']}'s calibration on this host, its straggle"
    if "runs" in source:
        runs = "; ".join(f"{p} worker(s): {', '.join(ids)}" for p, ids in source["runs"].items())
        where = f"in {source['records']} ({source['derived']})"
        return f"measured: {source['field']} of runs {runs} {where}"
    return f"measured: run {source['run_id']} in {source['records']}, its {source['field']}"
