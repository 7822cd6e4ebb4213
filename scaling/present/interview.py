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
wins; a dead or slow worker. Then the job's own (:meth:`scaling.job.Job.interview`): the ones
interviews ask about it, and one follow-up with its answer.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from scaling.errors import UsageError
from scaling.model.explain import Step
from scaling.present.report import si

CURVE = (1, 2, 4, 16, 64, 256, 1024)
"""Worker counts of the cost model's curve."""

QUESTIONS = (
    "How does it map-reduce: what runs where, and what moves in each step?",
    "What are its complexity, parameter count and compute per iteration?",
    "Where does scaling stop, and why?",
    "What are the alternatives, and when does each win?",
    "What happens when a worker dies or straggles?",
)


@dataclass(frozen=True)
class Figure:
    """A number in an answer: as printed, its value, and where it came from."""

    ref: int
    text: str
    value: float
    source: dict


@dataclass
class Answer:
    """One question's answer: paragraphs whose figures are marked ``[ref]``."""

    question: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.paragraphs.append(text)

    def figure(self, value: float, unit: str, source: dict, modelled: bool = False) -> str:
        """``value`` as the answer prints it, with its reference; the figure is kept."""
        if unit == "x":
            text = f"{value:.2f}x"
        elif unit == "%":
            text = f"{value:.0%}"
        elif unit == "count":
            text = f"{value:,.0f}"
        elif unit == "":  # a quality: an AUC, an accuracy, an objective
            text = f"{value:,.6g}"
        elif unit == "s":
            from scaling.model.costmodel import seconds

            text = seconds(value)
        else:
            text = si(value, unit)
        ref = len(self.figures) + 1
        self.figures.append(Figure(ref, text, float(value), source))
        return f"{text}{' (modelled)' if modelled else ''} [{ref}]"

    def to_dict(self, number: int) -> dict:
        return {
            "number": number,
            "question": self.question,
            "answer": "\n\n".join(self.paragraphs),
            "figures": [dataclasses.asdict(f) for f in self.figures],
        }


class Ask:
    """What answers are written from: the job, its config and the shape they talk about,
    the store's successful runs of the job, and the engines calibrated on this host.

    Its methods put a number into an answer as a :class:`Figure` of a stated source.
    """

    def __init__(self, job, config, rows: int, features: int, workers: int, store) -> None:
        from scaling.engines import ENGINES
        from scaling.model import calibration
        from scaling.results import load

        if rows < 1 or features < 1 or workers < 2:
            raise UsageError("--rows and --features must be >= 1, --workers >= 2")
        self.job, self.config = job, config
        self.rows, self.features, self.workers = rows, features, workers
        self.store = str(store)
        loaded = load(store).records if Path(store).is_dir() else []
        self.records = [r for r in loaded if r.get("job") == job.name and r.get("status") == "ok"]
        self.calibrations = {
            e: cal for e in ENGINES if e != "local" and (cal := calibration.load(store, e))
        }

    # ------------------------------------------------------------ formulas

    def variant(self, name: str | None):
        """The config of one of the job's variants (None: the config asked about)."""
        if name is None:
            return self.config
        return dataclasses.replace(self.config, **self.job.variants[name])

    def steps(self, workers: int, variant: str | None = None, **shape) -> list[Step]:
        rows, features = shape.get("rows", self.rows), shape.get("features", self.features)
        config = self.variant(variant)
        if "config" in shape:
            config = dataclasses.replace(config, **shape["config"])
        return self.job.explain(rows, features, workers, config)

    def step(
        self,
        a: Answer,
        kind: str,
        what: str,
        workers: int | None = None,
        variant: str | None = None,
        **shape,
    ) -> str:
        """A step's ``what`` from the job's ``explain`` (``shape``: other ``rows``,
        ``features``, or ``config`` options): ``flops``, the busiest process's work;
        ``sends``, the bytes one of them sends; ``repeats``, its messages per iteration.
        ``kind="*"``: the iteration's, summed over the steps (``moved``: the bytes it moves,
        all workers together, :func:`scaling.model.explain.moved`)."""
        from scaling.model.explain import moved

        workers = workers or self.workers
        steps = self.steps(workers, variant, **shape)
        chosen = [s for s in steps if kind in ("*", s.kind)]
        if not chosen:
            raise ValueError(f"{self.job.name} has no {kind} step")
        if what == "moved":
            value = sum(moved(steps, workers))
        elif kind == "*":
            value = sum(getattr(s, what) for s in chosen)
        else:
            value = getattr(chosen[0], what)
        unit = {"flops": "flop", "sends": "B", "moved": "B", "repeats": "count"}[what]
        return a.figure(value, unit, self._explain(kind, what, workers, variant, **shape))

    def _explain(self, kind, what, workers, variant, **shape) -> dict:
        config = {**dataclasses.asdict(self.variant(variant)), **shape.get("config", {})}
        return {
            "formula": "explain",
            "job": self.job.name,
            "rows": shape.get("rows", self.rows),
            "features": shape.get("features", self.features),
            "workers": workers,
            "config": {k: v for k, v in config.items() if _plain_value(v)},
            "step": kind,
            "field": what,
        }

    def parameters(self, a: Answer, variant: str | None = None, **config) -> str:
        cfg = dataclasses.replace(self.variant(variant), **config)
        value = self.job.parameters(self.features, cfg)
        source = {
            "formula": "parameters",
            "job": self.job.name,
            "features": self.features,
            "config": {k: v for k, v in dataclasses.asdict(cfg).items() if _plain_value(v)},
        }
        return a.figure(value, "count", source)

    def predicted(self, engine: str) -> dict | None:
        """The cost model's curve at :data:`CURVE` on ``engine``, if it is calibrated."""
        from scaling.model import costmodel

        cal = self.calibrations.get(engine)
        if cal is None:
            return None
        result, _ = costmodel.curve(
            self.job, self.config, self.rows, self.features, list(CURVE), cal, self.records
        )
        return result

    def prediction(self, a: Answer, engine: str, what: str, value: float) -> str:
        """A number of ``engine``'s predicted curve (``best_workers``, ...), modelled."""
        source = {
            "formula": "predict",
            "job": self.job.name,
            "engine": engine,
            "rows": self.rows,
            "features": self.features,
            "workers": list(CURVE),
            "config": {k: v for k, v in dataclasses.asdict(self.config).items() if _plain_value(v)},
            "field": what,
        }
        return a.figure(value, "count", source, modelled=True)

    def about(self, job, config) -> Ask:
        """The same shape, store and calibrations, about another job (a comparison)."""
        out = copy.copy(self)
        out.job, out.config = job, config
        out.records = []  # the other job's runs are not this one's
        return out

    def data_bytes(self, a: Answer) -> str:
        """The bytes of one worker's rows (float64): what data parallelism leaves in place."""
        value = self.rows * self.features * 8 / self.workers
        source = {
            "formula": "data",
            "rows": self.rows,
            "features": self.features,
            "workers": self.workers,
        }
        return a.figure(value, "B", source)

    # ------------------------------------------------------------ measurements

    def scaling_curves(self):
        """The measured curves of the job's runs in the store (:func:`scaling.present.figures.curves`)
        on the distributed engines: the local engine runs its workers one after another."""
        from scaling.present.figures import curves

        return [c for c in curves(self.records) if c.engine != "local"]

    def speedup(self, a: Answer, curve, workers: int) -> str:
        """The measured speedup T(1) / T(p) of ``curve`` at ``workers``, from its runs."""
        runs = {
            str(p): sorted(
                r["run_id"]
                for r in self.records
                if _on_curve(r, curve) and r["workers"] == p
            )
            for p in (1, workers)
        }  # fmt: skip
        point = next(p for p in curve.points if p.workers == workers)
        source = {
            "records": self.store,
            "field": "timings.per_iteration",
            "runs": runs,
            "derived": "median at 1 worker / median at the other",
        }
        return a.figure(point.speedup, "x", source)

    def variant_run(self, name: str) -> dict | None:
        """The latest run in the store of the job's variant ``name`` of the config asked
        about (every plain option agrees) on a distributed engine, if any."""
        config = dataclasses.asdict(self.variant(name)).items()
        matching = [
            r
            for r in self.records
            if r["engine"] != "local"
            and all(r["config"].get(k) == v for k, v in config if _plain_value(v))
        ]
        return matching[-1] if matching else None

    def record(self, a: Answer, record: dict, path: str, unit: str) -> str:
        """A field of one run record (``path``: dotted, list indices as numbers)."""
        value = _field(record, path)
        source = {"records": self.store, "run_id": record["run_id"], "field": path}
        return a.figure(value, unit, source)


def _on_curve(record: dict, curve) -> bool:
    from scaling.present.figures import curve_key

    return curve_key(record) == curve.key


def _field(record: dict, path: str):
    value = record
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _plain_value(v) -> bool:
    return isinstance(v, str | int | float | bool) or v is None


# ---------------------------------------------------------------- the questions


def interview(ask: Ask) -> list[Answer]:
    """Every answer about ``ask.job``: :data:`QUESTIONS`, then the job's own."""
    return [
        _decomposition(ask),
        _complexity(ask),
        _limits(ask),
        _alternatives(ask),
        _failures(ask),
        *ask.job.interview(ask),
    ]


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
                f"{ask.record(a, run, 'timings.per_iteration', 's')} per iteration."
            )
    return a


def _fastest_run(ask: Ask, winner: dict) -> dict | None:
    """The run behind a measured winner: the one whose time per iteration it is."""
    return next(
        (r for r in ask.records if r["timings"]["per_iteration"] == winner["seconds"]), None
    )


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
    base = {k: v for k, v in dataclasses.asdict(ask.config).items() if _plain_value(v)}
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
