"""What an interview answer is written with: :class:`Answer` (prose around figures),
:class:`Figure` (a number and its source) and :class:`Ask` (the job, its shape, the store's runs
and the calibrated engines, whose methods put a number into an answer with its source). The
general questions are in :mod:`scaling.present.interview`; each job's own are in its package's
``interview`` module."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from scaling.errors import UsageError
from scaling.model.steps import Step
from scaling.units import si

CURVE = (1, 2, 4, 16, 64, 256, 1024)
"""Worker counts of the cost model's curve."""


@dataclass(frozen=True, kw_only=True)
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

    def figure(
        self, value: float, unit: str, source: dict, modelled: bool = False, label: str = ""
    ) -> str:
        """``value`` as the answer prints it, with its reference (and ``label``, where it is
        not a plain measurement); the figure is kept."""
        if unit == "x":
            text = f"{value:.2f}x"
        elif unit == "%":
            text = f"{value:.0%}"
        elif unit == "count":
            text = f"{value:,.0f}"
        elif unit == "":  # a quality: an AUC, an accuracy, an objective
            text = f"{value:,.6g}"
        elif unit == "s":
            from scaling.units import seconds

            text = seconds(value)
        else:
            text = si(value, unit)
        ref = len(self.figures) + 1
        self.figures.append(Figure(ref=ref, text=text, value=float(value), source=source))
        label = "modelled" if modelled else label
        return f"{text}{f' ({label})' if label else ''} [{ref}]"

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
        all workers together, :func:`scaling.model.steps.moved`)."""
        from scaling.model.steps import moved

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
            "config": {k: v for k, v in config.items() if plain_value(v)},
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
            "config": {k: v for k, v in dataclasses.asdict(cfg).items() if plain_value(v)},
        }
        return a.figure(value, "count", source)

    def predicted(self, engine: str) -> dict | None:
        """The cost model's curve at :data:`CURVE` on ``engine``, if it is calibrated."""
        from scaling.model import costmodel

        cal = self.calibrations.get(engine)
        if cal is None:
            return None
        from scaling.run import sample

        samples = sample.cached(self.store, self.job, self.config, self.rows, self.features)
        result, _ = costmodel.curve(
            self.job,
            self.config,
            self.rows,
            self.features,
            list(CURVE),
            cal,
            self.records,
            samples=samples,
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
            "config": {k: v for k, v in dataclasses.asdict(self.config).items() if plain_value(v)},
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
        """The measured curves of the job's runs in the store
        (:func:`scaling.present.figures.curves`) on the distributed engines: the local engine runs
        its workers one after another."""
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
        label = "" if curve.clock == "measured" else curve.clock  # a scale model's, said so
        return a.figure(point.speedup, "x", source, label=label)

    def variant_run(self, name: str) -> dict | None:
        """The latest run in the store of the job's variant ``name`` of the config asked
        about (every plain option agrees) on a distributed engine, if any."""
        config = dataclasses.asdict(self.variant(name)).items()
        matching = [
            r
            for r in self.records
            if r["engine"] != "local"
            and all(r["config"].get(k) == v for k, v in config if plain_value(v))
        ]
        return matching[-1] if matching else None

    def record(self, a: Answer, record: dict, path: str, unit: str) -> str:
        """A field of one run record (``path``: dotted, list indices as numbers)."""
        from scaling.present.figures import dilation

        value = _field(record, path)
        source = {"records": self.store, "run_id": record["run_id"], "field": path}
        d, clock = dilation(record)
        if unit == "s" and d != 1.0:  # a scale model's time: the modelled cluster's, labelled
            source["divided_by"] = d
            return a.figure(value / d, unit, source, label=clock)
        return a.figure(value, unit, source)


def _on_curve(record: dict, curve) -> bool:
    from scaling.present.figures import curve_key

    return curve_key(record) == curve.key


def _field(record: dict, path: str):
    value = record
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def plain_value(v) -> bool:
    return isinstance(v, str | int | float | bool) or v is None
