"""The notebooks execute top to bottom on real local engines (nbclient, as
``notebooks/build.py --execute`` runs them), and the numbers of their closing interview
answers resolve to the runs the notebook just made, or to a formula."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from test_interview import resolve

from scaling.cli import main

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import build  # noqa: E402 - notebooks/build.py, which writes and runs them

SHAPE = {"kmeans": ("200000", "16", "3,6,7")}
"""What each notebook's last cell asks: rows, features, questions."""


@pytest.mark.parametrize("name", list(build.NOTEBOOKS))
def test_a_notebook_runs_and_its_answers_cite_its_runs(tmp_path, monkeypatch, capsys, name):
    store = tmp_path / "store"
    monkeypatch.setenv("SCALING_NOTEBOOK_STORE", str(store))
    nb = build.execute(build.build(name), tmp_path)  # raises on the first cell that fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4  # curves, split, ...
    said = "".join(o.get("text", "") for o in nb.cells[-1].outputs)

    rows, features, questions = SHAPE[name]
    argv = ["interview", name, "--store", str(store), "--rows", rows, "--features", features]
    kinds = set()
    for q in questions.split(","):
        capsys.readouterr()
        assert main([*argv, "--question", q, "--json"]) == 0
        (answer,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert answer["question"] in said
        for f in answer["figures"]:
            marked = re.escape(f["text"]) + rf"( \(modelled\))? \[{f['ref']}\]"
            assert re.search(marked, said), f
            assert resolve(f["source"], store) == pytest.approx(f["value"], rel=1e-12)
            kinds |= {k for k in ("runs", "run_id", "formula") if k in f["source"]}
    assert {"runs", "run_id", "formula"} <= kinds  # measured here, and modelled
