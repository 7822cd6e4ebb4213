"""Write the notebooks from the cells below, and with ``--execute`` run them top to bottom
(nbclient, this Python's kernel) and save them with their outputs, as they are committed.

    .venv/bin/python notebooks/build.py --execute        # all of them, ~1 minute each
    .venv/bin/python notebooks/build.py --execute kmeans

The cells call :mod:`scaling.present.lab`, so a notebook holds prose and a few lines of code a cell;
each one's runs go to a store of its own under ``SCALING_NOTEBOOK_STORE`` (default
``notebooks/results``), which its last cell's interview answers cite. Each runs in a kernel
of its own, as a reader's would; ``tests/test_notebooks.py`` runs them one after another in
one (:func:`kernel`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Notebook:
    """A notebook: its cells (kind, text), and the job, shape and questions of its closing
    interview answers (what ``tests/test_notebooks.py`` asks ``scaling interview`` for)."""

    job: str
    rows: int
    features: int
    questions: tuple[int, ...] | None  # None: every one
    config: dict  # the job's options the answers are about (``CONFIG``)
    cells: list[tuple[str, str]]

    def interview_argv(self) -> list[str]:
        """``scaling interview`` options for the closing answers' job, shape and config."""
        options = [(f"--{k.replace('_', '-')}", str(v)) for k, v in self.config.items()]
        shape = [("--rows", str(self.rows)), ("--features", str(self.features))]
        return [self.job, *(word for pair in shape + options for word in pair)]


def config_line(config: dict, note: str) -> str:
    """``CONFIG = JOB.config(...)`` of these options, and why they are what they are."""
    value = {k: json.dumps(v) if isinstance(v, str) else repr(v) for k, v in config.items()}
    args = ", ".join(f"{k}={v}" for k, v in value.items())  # ruff's quotes
    return f"CONFIG = JOB.config({args})  # {note}"


def algorithm(
    job: str, title: str, intro: str, config: tuple[dict, str], agree: tuple[str, str],
    sweep: str, decompose: str, rows: int, extra: list[tuple[str, str]] = (),
) -> Notebook:  # fmt: skip
    """One algorithm's notebook: its steps from the code, the job on every engine against
    the single-machine run, a Dask sweep on a scale model of 4 machines (speedup, split, one
    iteration's timeline), the cost model's curve beside its points, its decompositions side
    by side (then ``extra`` cells), and the interview answers citing those runs.

    ``config``: the job's options and a note on them; ``agree``: the tolerance of the
    every-engine check (``rtol=...`` or ``atol=...``) and why; ``rows``: the sweep's size."""
    features = 16
    cells = [
        ("md", f"# {title}\n\n{intro}"),
        (
            "code",
            f"""\
from IPython.display import Image

from jobs import {job}
from scaling.present import lab

STORE = lab.store("{job}")  # where its runs go
ENGINES = ["local", "dask", "ray", "spark"]
JOB = {job}.JOB
ROWS, FEATURES = {rows:_}, {features}  # the sweep's, and the shape the answers talk about
MACHINES = 4  # the scale model's
{config_line(*config)}""",
        ),
        (
            "md",
            f"## The steps, from the code\n\nThe functions `scaling explain {job}` names, in "
            "the order an iteration runs them.",
        ),
        ("code", "print(lab.step_sources(JOB, CONFIG))"),
        ("md", f"## The same model on every engine\n\n{agree[1]}"),
        (
            "code",
            "SAMPLE = JOB.synthetic(ROWS // 4, FEATURES, 0, CONFIG)  # the check's data\n"
            f"print(lab.on_every_engine(JOB, CONFIG, SAMPLE, ENGINES, {agree[0]}))",
        ),
        (
            "md",
            "## A sweep on a scale model of 4 machines: speedup, where the time goes, one "
            "iteration\n\n"
            "This host has 2 cores, and at 2 workers the driver would share them with the "
            "workers. So the sweep runs on a Dask cluster of 4 emulated one-core machines and "
            "a head, each a network namespace with its own address, its CPU share and a "
            "1 Gbit/s link, all slowed by one factor D (`scaling sweep JOB --emulate 4`). "
            "Times are shown divided by D, in the modelled cluster's time, and labelled "
            "emulated. Without root it runs on this host's cores and says so. "
            f"{sweep} (COST, against a single-thread baseline, is in the overview.)",
        ),
        (
            "code",
            'records = lab.emulated_sweep(JOB, CONFIG, STORE, "dask", MACHINES, ROWS, FEATURES)\n'
            'Image(lab.curves_png(records, "speedup"))',
        ),
        ("code", 'Image(lab.curves_png(records, "split"))'),
        ("code", "Image(lab.timeline_png(records))"),
        (
            "md",
            "## Predicted to 1,024 workers (modelled), beside the measured points\n\n"
            "The cost model prices the same steps on Dask's calibration of this host (made "
            "once, kept in the store), one core per worker on its own loopback links; the "
            "points are the sweep's, emulated. The model prices loopback links, the scale "
            "model has 1 Gbit/s ones: where communication weighs, the two may part.",
        ),
        ("code", 'Image(lab.predicted_png(JOB, CONFIG, STORE, "dask", ROWS, FEATURES, records))'),
        ("md", f"## Its decompositions side by side\n\n{decompose}"),
        ("code", 'print(lab.variants(JOB, CONFIG, STORE, "dask", ROWS // 4, FEATURES))'),
        *extra,
        (
            "md",
            "## The interview questions, answered from these runs\n\nThe five every job "
            "gets (how it map-reduces; its complexity, parameters and compute; where scaling "
            "stops; the alternatives; a dead or slow worker), then its own and a follow-up. "
            "Each number carries a reference to its source under the answer: a run in the "
            "store, a calibration, or a formula (marked modelled).",
        ),
        (
            "code",
            "print(lab.answers(JOB, CONFIG, STORE, rows=ROWS, features=FEATURES))",
        ),
    ]
    return Notebook(job, rows, features, None, config[0], cells)


KMEANS = algorithm(
    "kmeans",
    "How does k-means scale?",
    """\
Lloyd's algorithm, data-parallel: each worker keeps its rows, assigns them to the nearest of
the k centres and sums them per centre; the partial sums add up in a tree (the driver loop)
or an all-reduce among the workers, and every centre becomes its sum over its count. This
notebook runs the job's own code on real local clusters at small sizes, checks it against
the single-machine run on every engine, measures a small strong-scaling sweep, puts the cost
model's curve to 1,024 workers beside the measured points, compares the decompositions and
ends with the interview answers, every number traced to these runs or to a formula.""",
    ({"k": 8, "max_iter": 8, "tol": 0.0}, "8 iterations of Lloyd, none skipped"),
    (
        "rtol=1e-9",
        "The same job at 2 workers on each engine, against the job in one process: the "
        "partial sums are added in float64 in another order, so the inertia agrees to 1e-9.",
    ),
    "Each machine assigns its share of the rows; what crosses the links per step is k x "
    "(d + 1) sums per machine, whatever the rows, so the curve bends where a machine's "
    "share of the compute shrinks to the driver's round trip per step.",
    "The driver loop (one engine call per step: the MapReduce style) and the all-reduce "
    "gang (the loop inside the workers), at the same data and iterations.",
    200_000,
    extra=[
        (
            "md",
            "## Lloyd from k-means|| or from random rows\n\nTo convergence (`tol=1e-4`): "
            "k-means|| spends a few passes over the data choosing spread-out centres (its "
            "init seconds); compare the iterations Lloyd then needs and the inertia it "
            "reaches. Lloyd always converges (no step raises the inertia, and there are "
            "finitely many assignments), but to a local minimum that the start decides.",
        ),
        (
            "code",
            "CONVERGE = JOB.config(k=8, max_iter=100, tol=1e-4)\n"
            'INITS = {"k-means|| init": {}, "random init": {"init": "random"}}\n'
            'print(lab.variants(JOB, CONVERGE, STORE, "dask", ROWS // 4, FEATURES, '
            "variants=INITS, init=True))",
        ),
    ],
)

LOGREG = algorithm(
    "logreg",
    "How does logistic regression scale?",
    """\
The loss is a sum over the rows, and so is its gradient: each worker computes its rows'
gradient and loss (d + 1 numbers whatever its rows), one addition combines them, and the
optimiser (L-BFGS here) steps on exactly the single-machine gradient. That is why it is the
easy case of data parallelism: one synchronisation per step, balanced work, and a message
that does not grow with the data. This notebook runs the job's own code on real local
clusters at small sizes, checks it against the single-machine fit on every engine, measures
a small sweep, puts the cost model's curve beside it, compares L-BFGS (driver loop and
all-reduce), Newton and ADMM, and ends with the interview answers, citing these runs.""",
    ({"max_iter": 10, "tol": 1e-12}, "10 steps, none skipped by convergence"),
    (
        "rtol=1e-7",
        "The same fit at 2 workers on each engine, against the fit in one process: the "
        "gradient is summed in another order, so the objective agrees to 1e-7, not bit for bit.",
    ),
    "Each machine's gradient over its rows shrinks with the machines; the driver's round "
    "trip and L-BFGS's update on the head do not, and at 200,000 rows they soon weigh as "
    "much as the compute.",
    "At most 10 iterations each: L-BFGS in the driver loop and as an all-reduce gang (the "
    "same iterates), Newton (which also sends the d x d Hessian, and needs fewer, heavier "
    "steps) and ADMM (a local solve per worker and one averaging per step: cheap to "
    "synchronise, slow to converge). Compare the objective each reaches, not only its time.",
    200_000,
)

SGD = algorithm(
    "sgd",
    "How does data-parallel SGD scale?",
    """\
Each worker holds a shard of the rows and takes its share of every global batch; the
gradients are summed (a ring all-reduce, or through the driver) so that every replica takes
the same step as single-process SGD would, or the replicas synchronise less often (local
SGD averages the models every few steps; a parameter server takes each push as it comes).
This notebook runs the job's own code (a small torch MLP) on real local clusters, checks it
against one process on every engine, measures a small sweep, puts the cost model's curve
beside it, compares the four strategies, and ends with the interview answers, citing these
runs.""",
    ({"hidden": "64,64", "batch_size": 1024, "max_steps": 40}, "a small MLP, 40 steps"),
    (
        "atol=0.005",
        "Ring all-reduce at 2 workers on each engine, against one process: the averaged "
        "gradient is the single-process gradient up to rounding, so the held-out accuracy "
        "agrees within half a point (the parameters within 1e-5, as the tests check).",
    ),
    "A step's compute shrinks with the machines (each takes 1/p of the batch) while its "
    "ring all-reduce of every parameter over the 1 Gbit/s links does not: watch the "
    "communication share grow.",
    "The same 40 steps: ring all-reduce and driver all-reduce (synchronous, the same model), "
    "local SGD (averages every `sync_every` steps) and the parameter server "
    "(asynchronous, through rank 0). The asynchronous ones move fewer bytes and reach a "
    "different accuracy.",
    100_000,
)

GBDT = algorithm(
    "gbdt",
    "How do boosted trees scale?",
    """\
A tree grows level by level; at each level every worker builds gradient histograms of its
rows (features x bins per node), the histograms are summed across workers (data-parallel),
or each worker finds the best split of its own features and only splits move
(feature-parallel), or each worker votes for its top features and only those histograms are
summed (LightGBM's voting-parallel). This notebook runs XGBoost and LightGBM through the
job's own code on real local clusters, checks data-parallel XGBoost against one process on
every engine, measures a small sweep, puts the cost model's curve beside it, compares the
five decompositions, and ends with the interview answers, citing these runs.""",
    ({"rounds": 10}, "10 trees of data-parallel XGBoost, depth 6"),
    (
        "atol=0.005",
        "Data-parallel XGBoost at 2 workers on each engine, against one process: the "
        "workers' quantile sketches are merged, so the bins (and the trees) can differ "
        "slightly; the held-out AUC agrees within 0.005.",
    ),
    "A round (a tree) all-reduces a histogram per level whatever the rows, so at 100,000 "
    "rows the links soon take most of a round.",
    "XGBoost by rows and by features, LightGBM by rows, by features and by vote, 10 trees "
    "each on the same data: what a tree moves, how long it takes, and the AUC it reaches.",
    100_000,
)

OVERVIEW = Notebook(
    "kmeans",
    200_000,
    16,
    (1, 3),
    KMEANS.config,
    [
        (
            "md",
            """\
# How to answer "how does X scale?"

The same six moves answer it for any algorithm, and the other notebooks make each of them
for one algorithm (k-means, logistic regression, data-parallel SGD, boosted trees):

1. **Decompose** one iteration into a *map* (each worker, its own rows), a *combine* (the
   partial results meet) and an *update* (the model changes), and say what moves in each.
2. **Price the three costs**: compute, which shrinks with the workers; communication, the
   bytes per iteration, which does not (it is sized by the model, not the data); overhead,
   the fixed cost of every call or synchronisation. Scaling stops where the shrinking
   compute meets the other two.
3. **Strong or weak**: strong scaling keeps the data and adds workers (speedup
   T(1)/T(p)); weak scaling grows the data with the workers (efficiency T(1)/T(p), ideally 1).
4. **COST**: the fewest workers that beat a good single-thread implementation; a speedup
   over a slow one-worker run proves nothing.
5. **The style**: a driver loop (one engine call per step, the MapReduce style) or an
   all-reduce gang (the loop inside the workers, no driver in the way).
6. **Predict** beyond the machine you measured on, with a cost model calibrated on it.

Every cell below runs on real local engines at small sizes.""",
        ),
        (
            "code",
            """\
from IPython.display import Image

from jobs import gbdt, kmeans, logreg, sgd
from scaling.present import lab

STORE = lab.store("overview")  # where its runs go
JOB = kmeans.JOB  # the running example
ROWS, FEATURES = 200_000, 16
"""
            + config_line(KMEANS.config, "8 iterations of Lloyd, none skipped"),
        ),
        (
            "md",
            "## 1. Decompose: what runs where, and what moves\n\nOne iteration of each job at "
            "1,000,000 rows x 32 features on 16 workers, from the jobs' `explain` (a "
            "formula, so modelled): the bytes are sized by the model (k centres, d weights, "
            "a network's parameters, a tree level's histograms), not by the rows.",
        ),
        (
            "code",
            "print(lab.decompositions([kmeans.JOB, logreg.JOB, sgd.JOB, gbdt.JOB], "
            "1_000_000, 32, 16))",
        ),
        (
            "md",
            "## 2. The three costs, measured\n\nA strong-scaling sweep of k-means on Dask, "
            "with the single-thread baseline: where each iteration's time goes at 1 and 2 "
            "workers (on this 2-core machine the 2-worker point shares its cores with the "
            "driver).",
        ),
        (
            "code",
            'strong = lab.sweep(JOB, CONFIG, STORE, "dask", rows=ROWS, features=FEATURES)\n'
            'Image(lab.curves_png(strong, "split"))',
        ),
        (
            "md",
            "## 3. Strong and weak scaling\n\nThe speedup of the strong sweep, then a weak "
            "sweep (the rows per worker fixed, so 2 workers have twice the data): its "
            "efficiency T(1)/T(p) is 1 when adding data and workers together costs nothing.",
        ),
        ("code", 'Image(lab.curves_png(strong, "speedup"))'),
        (
            "code",
            'weak = lab.sweep(JOB, CONFIG, STORE, "dask", rows=ROWS // 2, features=FEATURES, '
            'mode="weak")\n'
            'Image(lab.curves_png(weak, "efficiency"))',
        ),
        (
            "md",
            "## 4. COST\n\nThe summary of both sweeps: speedup and efficiency at the most "
            "workers, and COST, the fewest workers faster than the single-thread baseline "
            "(its time per iteration beside it).",
        ),
        ("code", "print(lab.summary(strong + weak, STORE))"),
        (
            "md",
            "## 5. The MapReduce and the AllReduce style\n\nThe same L-BFGS fit of logistic "
            "regression, as a driver loop (every step an engine call, results through the "
            "driver) and as one all-reduce gang (the workers keep the loop and sum among "
            "themselves): the same iterates, and the difference is the overhead per step.",
        ),
        (
            "code",
            'STYLES = {"driver loop": {}, "all-reduce gang": {"execution": "allreduce"}}\n'
            "LR = logreg.JOB.config(max_iter=10, tol=1e-12)\n"
            'print(lab.variants(logreg.JOB, LR, STORE, "dask", ROWS // 4, FEATURES, '
            "variants=STYLES))",
        ),
        (
            "md",
            "## 6. Predict beyond this machine (modelled)\n\nThe cost model prices k-means' "
            "steps on Dask's calibration of this host to 1,024 workers; the points are the "
            "strong sweep's.",
        ),
        ("code", 'Image(lab.predicted_png(JOB, CONFIG, STORE, "dask", ROWS, FEATURES, strong))'),
        (
            "md",
            "## The answer, for k-means\n\nThe decomposition and where scaling stops, as "
            "`scaling interview kmeans` gives them, citing the runs above.",
        ),
        (
            "code",
            "print(lab.answers(JOB, CONFIG, STORE, [1, 3], rows=ROWS, features=FEATURES))",
        ),
    ],
)

NOTEBOOKS = {"overview": OVERVIEW, "kmeans": KMEANS, "logreg": LOGREG, "sgd": SGD, "gbdt": GBDT}


def build(name: str, **parameters):
    """The notebook ``name`` without outputs; ``parameters`` (``ROWS=50_000``), where given,
    in a cell after its first code cell, which sets them, as papermill injects them."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for kind, text in NOTEBOOKS[name].cells:
        cell = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        nb.cells.append(cell(text))
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells[first].metadata["tags"] = ["parameters"]
    if parameters:
        lines = "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
        injected = nbformat.v4.new_code_cell(f"# Parameters\n{lines}")
        injected.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(first + 1, injected)
    return nb


@contextlib.contextmanager
def kernel(cwd: Path, timeout: int = 600):
    """A kernel (this Python's, in ``cwd``) and a function that runs a notebook in it top to
    bottom and returns it with its outputs, raising on the first cell that fails.

    Each notebook starts in a fresh namespace: ``%reset_selective`` deletes every name the
    last one defined (``%reset`` would delete ``__spec__`` too, without which
    multiprocessing cannot spawn, and Dask's nanny fails to start). Several run one after another
    share what the kernel's process keeps: the modules it imported and the JVM Spark leaves
    behind (a process's first Spark start costs 15 s on 2 cores, later ones under a second).
    """
    import nbformat
    from nbclient import NotebookClient

    # the kernel is "python3" as ipykernel installs it: run it with this environment's python
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    client = NotebookClient(nbformat.v4.new_notebook(), timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})  # fmt: skip
    with client.setup_kernel():
        info = client.wait_for_reply(client.kc.kernel_info())["content"]["language_info"]

        def run(nb):
            reset = nbformat.v4.new_code_cell("%reset_selective -f .")
            client.nb = nbformat.v4.new_notebook(cells=[reset])  # where its output goes
            client.execute_cell(reset, 0, store_history=False)
            client.nb = nb
            client.reset_execution_trackers()
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            nb.metadata["language_info"] = info
            return nb

        yield run
        # before the kernel is asked to exit: closing Ray, Spark and Dask from its exit hook
        # can outlast the kernel manager's wait for it (then SIGTERM, and Ray's stack traces)
        client.nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell("from scaling.present import lab\nlab.close()")]
        )
        client.execute_cell(client.nb.cells[0], 0, store_history=False)


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
            with kernel(HERE) as run:  # a kernel of its own, as a reader's would be
                nb = run(nb)
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print(HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
