"""Every view of a run shows the same numbers: the CLI table, `scaling results`, the HTML report
and the record itself.

Every job runs on the local and Dask engines, and k-means on every engine: how a figure is
derived does not depend on the engine, and each sweep run starts its own cluster (Spark's
takes ~10 s), so the whole product would cost minutes for nothing more.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scaling.results import load

JOBS = {  # the engines, then a few small iterations of each job
    "kmeans": ["--engines", "local,dask", "--k", "3", "--max-iter", "3"],
    "logreg": ["--engines", "local,dask", "--max-iter", "3", "--execution", "allreduce"],
    "sgd": ["--engines", "local,dask", "--hidden", "8", "--batch-size", "64", "--max-steps", "5",
            "--eval-every", "100"],
    "gbdt": ["--engines", "local,dask", "--rounds", "3", "--max-depth", "3", "--num-leaves", "7",
             "--max-bin", "15"],
}  # fmt: skip
SWEEPS = """
import sys
from scaling.cli import main

if __name__ == "__main__":
    store, jobs = sys.argv[1], sys.argv[2:]
    for job in jobs:
        job, *options = job.split()
        print(f"@@JOB {job}", flush=True)
        main(["sweep", job, "--workers", "2", "--rows", "3000", "--features", "4",
              "--no-baseline", "--out", store, *options])
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One small sweep of each job on every engine, run as a user runs it (own process: the
    sweep starts its own clusters)."""
    store = tmp_path_factory.mktemp("store")
    script = store / "sweeps.py"
    script.write_text(SWEEPS)
    jobs = [" ".join([name, *options]) for name, options in JOBS.items()]
    done = subprocess.run(
        [sys.executable, str(script), str(store), *jobs],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    tables = dict(re.findall(r"@@JOB (\w+)\n(.*?)(?=@@JOB|\Z)", done.stdout, re.S))
    return store, tables


@pytest.mark.parametrize("job", JOBS)
def test_table_results_report_and_record_agree_on_throughput(swept, job, capsys):
    from scaling.cli import main

    store, tables = swept
    records = [r for r in load(store).records if r["job"] == job]
    engines = JOBS[job][JOBS[job].index("--engines") + 1].split(",")
    assert sorted(r["engine"] for r in records) == sorted(engines)
    assert all(r["status"] == "ok" for r in records)
    (sweep_id,) = {r["sweep_id"] for r in records}
    assert main(["results", "--runs", str(store / sweep_id)]) == 0
    listing = capsys.readouterr().out
    report = html.unescape((store / sweep_id / "report.html").read_text())
    for r in records:
        shown = f"{r['throughput']['value']:,.0f} {r['throughput']['unit']}"
        row = re.compile(rf"^{job}\s+{r['engine']}\s+2\s.*\s{re.escape(shown)}\s", re.M)
        assert row.search(tables[job]), (shown, tables[job])
        assert row.search(listing), (shown, listing)
        execution = r["execution"]
        label = r["engine"] + ("" if execution == "driver" else f" {execution}")
        assert f"<td>{label}</td><td>2</td><td>1</td>" in report.replace("\n", "")
        assert f"<td>{shown}</td>" in report


def test_table_and_report_say_when_the_machine_has_too_few_cores(swept):
    store, tables = swept
    records = load(store).records
    cores = records[0]["host"]["cores"]
    # each sweep ran 2 workers: with the driver, 3 processes; the local engine needs 1 core
    too_few = cores < 3
    for job in JOBS:
        (sweep_id,) = {r["sweep_id"] for r in records if r["job"] == job}
        report = html.unescape((store / sweep_id / "report.html").read_text())
        said = f"This machine has {cores} cores"
        assert (said in tables[job]) == too_few
        assert (said in report) == too_few


def test_every_run_records_its_execution_and_an_allreduce_run_its_measured_split(swept):
    store, _ = swept
    records = load(store).records
    executions = {r["job"]: r["execution"] for r in records if r["engine"] != "baseline"}
    # logreg asked for the all-reduce; SGD's default strategy and GBDT train in a gang
    assert executions == {
        "kmeans": "driver",
        "logreg": "allreduce",
        "sgd": "allreduce",
        "gbdt": "allreduce",
    }
    for r in records:
        if r["job"] == "logreg" and r["engine"] != "baseline":
            assert r["sources"]["split"].startswith("measured: map and update timed inside")


# Debian's Chromium, headless, as root on a closed network: no sandbox, no GPU, no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_the_index_and_every_report_render_in_a_real_browser(swept):
    """What a person sees: ``index.html`` and each job's report opened in headless Chromium;
    every image loads, nothing is logged as an error, every link leads to a file; the
    screenshots are kept beside the reports (``STORE/screenshots``) to look at."""
    import shutil

    from playwright.sync_api import sync_playwright

    from scaling.present.figures import curves
    from scaling.present.report import write_index

    chromium = shutil.which("chromium")
    assert chromium, "no chromium on PATH: `apt-get install chromium` (.ci/run installs it)"
    store, _ = swept
    index = write_index(store, load(store).records)
    reports = sorted(store.glob("*/report.html"))
    assert len(reports) == len(JOBS)
    shots = store / "screenshots"
    shots.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for path in [index, *reports]:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                errors = []
                page.on("console", lambda m, e=errors: m.type == "error" and e.append(m.text))
                page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
                page.goto(path.as_uri(), wait_until="load")
                images = page.evaluate(
                    "Array.from(document.images, i => [i.alt, i.complete && i.naturalWidth > 0])"
                )
                assert all(ok for _, ok in images), (path, images)
                assert errors == [], (path, errors)
                if path == index:  # the summary, then each job's thumbnail and title
                    links = page.eval_on_selector_all("a", "links => links.map(a => a.href)")
                    assert len(links) == 2 * len(JOBS) and len(images) == len(JOBS)
                    assert all(Path(url.removeprefix("file://")).is_file() for url in links)
                    summary = page.eval_on_selector_all("table tr", "rows => rows.length")
                    assert summary == 1 + len(curves(load(store).records))
                    width = page.eval_on_selector(
                        "img.thumb", "i => i.getBoundingClientRect().width"
                    )
                    assert 100 < width < 400  # a thumbnail beside its readings, not the plot
                else:  # speedup, efficiency, throughput, split and the timeline
                    assert len(images) == 5, (path, images)
                name = path.parent.name if path != index else "index"
                page.screenshot(path=shots / f"{name}.png", full_page=True)
                page.close()
        finally:
            browser.close()
