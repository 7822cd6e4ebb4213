"""Write the notebooks from the cells below, and with ``--execute`` run them top to bottom
(nbclient, this Python's kernel) and save them with their outputs, as they are committed.

    .venv/bin/python notebooks/build.py --execute        # all of them, ~2 minutes each
    .venv/bin/python notebooks/build.py --execute kmeans

The cells call :mod:`scaling.lab`, so a notebook holds prose and a few lines of code a cell;
their runs go to ``SCALING_NOTEBOOK_STORE`` (default ``notebooks/results``), which the last
cell's interview answers cite. ``tests/test_notebooks.py`` executes them the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def setup(job: str, then: str) -> str:
    """The first code cell: the imports, where the runs go, the engines, then ``then``."""
    return f"""\
import os

from IPython.display import Image

from jobs import {job}
from scaling import lab

STORE = os.environ.get("SCALING_NOTEBOOK_STORE", "results")
ENGINES = ["local", "dask", "ray", "spark"]
{then}"""


KMEANS = [
    (
        "md",
        """\
# How does k-means scale?

Lloyd's algorithm, data-parallel: each worker keeps its rows, assigns them to the nearest of
the k centres and sums them per centre; the partial sums add up in a tree (the driver loop)
or an all-reduce among the workers, and every centre becomes its sum over its count. This
notebook runs the job's own code on real local clusters at small sizes, checks it against
the single-machine run on every engine, measures a small strong-scaling sweep, puts the cost
model's curve to 1,024 workers beside the measured points, compares the two executions and
ends with the interview answers, every number traced to these runs or to a formula.""",
    ),
    (
        "code",
        setup(
            "kmeans",
            """JOB = kmeans.JOB
CONFIG = kmeans.KMeansConfig(k=8, max_iter=8, tol=0.0)
SOURCE = JOB.synthetic(50_000, 16, 0, CONFIG)""",
        ),
    ),
    (
        "md",
        "## The steps, from the code\n\nThe functions `scaling explain kmeans` names, in "
        "the order an iteration runs them: map, combine, update.",
    ),
    ("code", "print(lab.step_sources(JOB, CONFIG))"),
    (
        "md",
        "## The same centres on every engine\n\nThe same job at 2 workers on each engine, "
        "against the job in one process (one worker): the inertia agrees to 1e-9.",
    ),
    ("code", "print(lab.on_every_engine(JOB, CONFIG, SOURCE, ENGINES))"),
    (
        "md",
        "## A small sweep on Dask: speedup, where the time goes, one iteration\n\n"
        "On this 2-core machine the 2-worker point shares its cores with the driver.",
    ),
    (
        "code",
        'records = lab.sweep(JOB, CONFIG, STORE, "dask", rows=200_000)\n'
        'Image(lab.curves_png(records, "speedup"))',
    ),
    ("code", 'Image(lab.curves_png(records, "split"))'),
    ("code", "Image(lab.timeline_png(records))"),
    (
        "md",
        "## Predicted to 1,024 workers (modelled), beside the measured points\n\n"
        "The cost model prices the same steps on Dask's calibration of this host.",
    ),
    ("code", 'Image(lab.predicted_png(JOB, CONFIG, STORE, "dask", 200_000, 16, records))'),
    (
        "md",
        "## Two executions of Lloyd\n\nThe driver loop (one engine call per step) and the "
        "all-reduce gang (the loop inside the workers).",
    ),
    ("code", 'print(lab.variants(JOB, CONFIG, SOURCE, "dask"))'),
    (
        "md",
        "## The interview questions, answered from these runs\n\nWhere scaling stops; how "
        "k-means parallelises and whether it converges; a follow-up.",
    ),
    (
        "code",
        "print(lab.answers(JOB, CONFIG, STORE, [3, 6, 7], rows=200_000, features=16))",
    ),
]

NOTEBOOKS = {"kmeans": KMEANS}


def build(name: str):
    """The notebook ``name`` without outputs."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for kind, text in NOTEBOOKS[name]:
        cell = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        nb.cells.append(cell(text))
    return nb


def execute(nb, cwd: Path, timeout: int = 600):
    """Run ``nb`` top to bottom in ``cwd`` with this Python's kernel; the notebook, with its
    outputs (raises on the first cell that fails)."""
    from nbclient import NotebookClient

    # the kernel is "python3" as ipykernel installs it: run it with this environment's python
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={
        "metadata": {"path": str(cwd)}
    }).execute()  # fmt: skip
    return nb


def main() -> None:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(NOTEBOOKS), help="notebooks")
    parser.add_argument("--execute", action="store_true", help="run them, keep the outputs")
    args = parser.parse_args()
    for name in args.names:
        nb = build(name)
        if args.execute:
            print(f"executing {name}.ipynb ...", file=sys.stderr, flush=True)
            nb = execute(nb, HERE)
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print(HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
