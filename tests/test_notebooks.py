"""The notebooks execute top to bottom on real local engines (nbclient, as
``notebooks/build.py --execute`` runs them); every number of their closing interview answers
is the one ``scaling interview`` gives on the store they wrote, and every number of every
answer it gives there resolves to the runs the notebooks made, a calibration, or a formula.

They run one after another in one kernel, each in a fresh namespace: what they share is what
the kernel's process keeps (imported modules, the clusters and the calibration
:mod:`scaling.present.lab` keeps), which saves about 20 s a notebook on 2 cores; each writes a store
of its own, as it does when ``build.py`` runs it.

They run at a quarter of their rows and, where they build a scale model, on 2 machines, as
papermill runs a notebook with parameters (a cell after the one that sets them): the same
cells, about half the time of the sizes ``build.py`` commits them at.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import pytest
from test_interview import LABEL, sources
from test_machines import _netns

from jobs import get_job
from scaling.cli import main
from scaling.results import load

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import build  # noqa: E402 - notebooks/build.py, which writes and runs them


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One kernel for the notebooks, and the folder of their stores."""
    stores = tmp_path_factory.mktemp("stores")
    mp = pytest.MonkeyPatch()
    mp.setenv("SCALING_NOTEBOOK_STORE", str(stores))
    with build.kernel(tmp_path_factory.mktemp("cwd")) as run:
        yield run, stores
    mp.undo()


@pytest.mark.parametrize("name", list(build.NOTEBOOKS))
def test_a_notebook_runs_and_its_answers_cite_its_runs(session, capsys, name):
    run, stores = session
    notebook, store = build.NOTEBOOKS[name], stores / name
    notebook = dataclasses.replace(notebook, rows=notebook.rows // 4)
    parameters = {"ROWS": notebook.rows}
    if "MACHINES = " in next(text for kind, text in notebook.cells if kind == "code"):
        parameters["MACHINES"] = 2
    netns = _netns()
    nb = run(build.build(name, **parameters))  # raises on the first cell that fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4  # curves, split, ...
    said = "".join(o.get("text", "") for o in nb.cells[-1].outputs)

    config = get_job(notebook.job).config(**notebook.config)
    capsys.readouterr()
    argv = ["interview", *notebook.interview_argv(), "--store", str(store), "--json"]
    assert main(argv) == 0
    every = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = set().union(*(sources(a, store, get_job(notebook.job), config) for a in every))
    shown = every if notebook.questions is None else [every[q - 1] for q in notebook.questions]
    for answer in shown:  # what the notebook printed
        assert answer["question"] in said
        for f in answer["figures"]:
            assert re.search(re.escape(f["text"]) + rf"{LABEL} \[{f['ref']}\]", said), f
    assert {"runs", "formula", "calibration"} <= kinds  # measured here, and modelled
    if "MACHINES" in parameters:  # its sweep's scale model (`sweep --emulate`), removed after
        emulated = [r for r in load(store).records if r.get("emulation")]
        assert {r["workers"] for r in emulated} == {1, 2}
        assert any("emulated (" in f.read_text() for f in store.glob("*/report.html"))
        assert _netns() <= netns
    if notebook.questions is None:  # the alternatives: each decomposition cited from its run
        assert "run_id" in kinds
