"""``scaling interview``: every job answers every question, and every number it prints
resolves, by its stated source, to a record field or a formula (resolved here from the raw
records and the jobs' own formulas): without a store here, with the notebooks' stores (their
runs and calibrations) in ``tests/test_notebooks.py``."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from jobs import JOBS, get_job
from scaling.cli import main
from scaling.model import calibration, costmodel
from scaling.model.steps import moved

UNITED = re.compile(r"\d[\d,.]*(?:\s?(?:[kMG]?B|[kMG]?flop|s|ms|us)|x|%)(?![\w])")
"""A number with a unit: what must be a figure of its own (a reference follows it)."""


def answers(capsys, *argv) -> list[dict]:
    capsys.readouterr()
    assert main(["interview", *argv, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def records(store: Path) -> dict[str, dict]:
    out = {}
    for path in store.glob("*/records.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            out[record["run_id"]] = record
    return out


def field(record: dict, path: str):
    for part in path.split("."):
        record = record[int(part)] if isinstance(record, list) else record[part]
    return record


LABEL = r"( \((modelled|emulated \([\d.]+x\))\))?"  # a figure's, where not a plain measurement


def resolve(source: dict, store: Path | None) -> float:
    """A figure's value, from its source alone."""
    if "formula" in source:
        job = get_job(source["job"]) if "job" in source else None
        if source["formula"] == "explain":
            config = job.config(**source["config"])
            steps = job.explain(source["rows"], source["features"], source["workers"], config)
            if source["field"] == "moved":
                return sum(moved(steps, source["workers"]))
            chosen = [s for s in steps if source["step"] in ("*", s.kind)]
            return sum(
                getattr(s, source["field"]) for s in chosen[: None if source["step"] == "*" else 1]
            )
        if source["formula"] == "parameters":
            return job.parameters(source["features"], job.config(**source["config"]))
        if source["formula"] == "data":
            return source["rows"] * source["features"] * 8 / source["workers"]
        if source["formula"] == "predict":
            cal = calibration.load(store, source["engine"])
            runs = [r for r in records(store).values() if r["job"] == job.name]
            config = job.config(**source["config"])
            curve, _ = costmodel.curve(
                job, config, source["rows"], source["features"], source["workers"], cal, runs
            )
            return curve[source["field"]]
    if "calibration" in source:
        return getattr(calibration.load(store, source["calibration"]), source["field"])
    runs = records(Path(source["records"]))
    if "run_id" in source:
        return field(runs[source["run_id"]], source["field"]) / source.get("divided_by", 1.0)
    medians = [
        statistics.median(field(runs[i], source["field"]) for i in ids)
        for ids in source["runs"].values()
    ]
    return medians[0] / medians[1]


def sources(answer: dict, store: Path | None, job, config=None) -> set[str]:
    """Check one answer: each figure is printed with its reference and resolves, from its
    source alone, to its value; no number with a unit is printed without one. The kinds of
    source it cites."""
    steps = job.explain(1_000_000, 32, 16, config or job.config())  # the CLI's default shape
    assert answer["question"].endswith("?") and answer["answer"]
    text = answer["answer"]
    for words in [job.explain_note, *(s.does for s in steps)]:  # the job's own words
        text = text.replace(words, "")  # for its steps: "6 B P / p flops", "25 MB buckets"
    kinds = set()
    for f in answer["figures"]:
        marked = re.compile(re.escape(f["text"]) + rf"{LABEL} \[{f['ref']}\]")
        assert marked.search(text), (f, text)
        assert resolve(f["source"], store) == pytest.approx(f["value"], rel=1e-12)
        kinds.add(next(k for k in ("formula", "calibration", "runs", "run_id") if k in f["source"]))
        text = marked.sub("", text, count=1)
    assert not UNITED.findall(text), answer["question"]  # no number with a unit unsourced
    return kinds


@pytest.mark.parametrize("name", list(JOBS))
def test_without_a_store_every_job_answers_from_its_formulas(capsys, tmp_path, name):
    said = answers(capsys, name, "--store", str(tmp_path / "none"))
    assert len(said) >= 7  # the five every job answers, its own, and a follow-up
    assert set().union(*(sources(a, None, get_job(name)) for a in said)) == {"formula"}


def test_one_question_and_what_a_calibration_would_add(capsys, tmp_path):
    limits = answers(capsys, "gbdt", "--store", str(tmp_path / "none"))[2]
    assert "No engine is calibrated" in limits["answer"]
    assert main(["interview", "gbdt", "--question", "3", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Q3. Where does scaling stop" in out and "Q2." not in out
    assert "where the numbers come from:" in out and "[1] formula (modelled)" in out


def test_a_question_out_of_range_is_one_line(capsys, tmp_path):
    assert main(["interview", "sgd", "--question", "99", "--store", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == ("scaling: error: --question: 1 to 7 for sgd, got 99")
