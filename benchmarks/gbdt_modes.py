"""Where each boosted-trees mode wins: a sweep over rows x features, all modes side by side.

    .venv/bin/python benchmarks/gbdt_modes.py                       # the recorded run
    .venv/bin/python benchmarks/gbdt_modes.py --rows 10000 --features 8,32

At every (rows, features) point, on one engine at ``--workers`` workers, the same data
(the seeded classification generator) is trained by XGBoost data- and feature-parallel and
LightGBM data-, feature- (its command-line program) and voting-parallel, one after the other,
``--repeat`` times. Two times per run: the median time per round (one tree, after the first)
and the whole training (the gang call: for feature-parallel that includes sending every worker
all rows of its columns, or every row for LightGBM's). Bytes per round
are what the kernel counted on the workers' sockets, beside each mode's formula
(:func:`jobs.gbdt.steps.round_bytes`); the communication share is the median round's (its wall time
less the same round trained on the worker's own rows without the network). Writes
``benchmarks/results/gbdt-modes/{README.md,modes.json,modes.png}``; the reading in README.md
is written by hand after looking at the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from common import RESULTS, host_line, kept_reading
from tqdm import tqdm

from jobs import gbdt
from scaling.data import Classification
from scaling.engines import make_engine
from scaling.measure.host import host_facts
from scaling.results import atomic_write

MODES = {
    "xgboost data": ("xgboost", "data"),
    "xgboost feature": ("xgboost", "feature"),
    "lightgbm data": ("lightgbm", "data"),
    "lightgbm feature": ("lightgbm", "feature"),
    "lightgbm voting": ("lightgbm", "voting"),
}


def measure(eng, ds, config: gbdt.GBDTConfig) -> dict:
    eng.trace.reset()
    result = gbdt.JOB.fit(eng, ds, config)
    _, median = eng.trace.typical(gbdt.ITERATION)
    return {
        "round": median["wall"],
        "comm": median["communication"] / median["wall"],
        "bytes": median["bytes_in"] + median["bytes_out"],
        "measured": median["sources"]["bytes"].startswith("measured"),
        "train": result.train_seconds,
        "auc": result.auc,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="dask")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--features", default="8,32,128")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "gbdt-modes"))
    args = parser.parse_args()
    sizes = [int(r) for r in args.rows.split(",")]
    widths = [int(f) for f in args.features.split(",")]
    points: list[dict] = []
    with make_engine(args.engine, args.workers) as eng:
        bar = tqdm(total=len(sizes) * len(widths) * len(MODES) * args.repeat, desc="gbdt modes")
        for rows in sizes:
            for features in widths:
                ds = eng.load(Classification(rows=rows, features=features, seed=0))
                runs: dict[str, list[dict]] = {m: [] for m in MODES}
                for _ in range(args.repeat):  # interleaved: drift hits every mode alike
                    for name, (library, mode) in MODES.items():
                        config = gbdt.GBDTConfig(
                            library=library,
                            mode=mode,
                            rounds=args.rounds,
                            top_k=args.top_k,
                            timeout=1800,
                        )
                        runs[name].append(measure(eng, ds, config))
                        bar.update()
                eng.release(ds)
                for name, (library, mode) in MODES.items():
                    config = gbdt.GBDTConfig(library=library, mode=mode, top_k=args.top_k)
                    points.append(
                        {
                            "rows": rows,
                            "features": features,
                            "mode": name,
                            "round_s": statistics.median(r["round"] for r in runs[name]),
                            "train_s": statistics.median(r["train"] for r in runs[name]),
                            "auc": statistics.median(r["auc"] for r in runs[name]),
                            "comm_share": statistics.median(r["comm"] for r in runs[name]),
                            "bytes_per_round": statistics.median(r["bytes"] for r in runs[name]),
                            # LightGBM's program: sockets of another process, bytes modelled
                            "bytes_measured": all(r["measured"] for r in runs[name]),
                            "formula_bytes_per_round": gbdt.round_bytes(
                                config, rows, features, args.workers
                            ),
                        }
                    )
        bar.close()
    write(args, points)
    print((Path(args.out) / "README.md").read_text())


def write(args: argparse.Namespace, points: list[dict]) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reading = out / "README.md"
    kept = kept_reading(reading)
    lines = [
        "# Boosted trees: where data-, feature- and voting-parallel win",
        "",
        f"Command: `.venv/bin/python benchmarks/gbdt_modes.py --engine {args.engine} "
        f"--workers {args.workers} --rows {args.rows} --features {args.features} "
        f"--rounds {args.rounds} --top-k {args.top_k} --repeat {args.repeat}`",
        "",
        f"{args.engine}, {args.workers} workers, {args.rounds} rounds, XGBoost depth 6 / "
        f"LightGBM 31 leaves, 255 bins, voting top-k {args.top_k}; medians of {args.repeat} "
        f"interleaved runs. Host: {host_line()}. LightGBM feature-parallel runs in its "
        "command-line program, whose sockets the workers cannot count: its bytes are the "
        "formula's alone.",
        "",
        "| rows | features | mode | s / round | comm. share | train s (whole gang) "
        "| MB / round, measured | (formula) | held-out AUC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        moved = f"{p['bytes_per_round'] / 1e6:.2f}" if p["bytes_measured"] else "(not seen)"
        lines.append(
            f"| {p['rows']:,} | {p['features']} | {p['mode']} | {p['round_s']:.4f} | "
            f"{p['comm_share']:.0%} | {p['train_s']:.2f} | {moved} | "
            f"{p['formula_bytes_per_round'] / 1e6:.2f} | {p['auc']:.4f} |"
        )
    lines += ["", "Fastest per round / in all, at each point:", ""]
    lines += ["| rows | features | fastest per round | fastest in all (incl. set-up) |"]
    lines += ["|---|---|---|---|"]
    for rows, features in dict.fromkeys((p["rows"], p["features"]) for p in points):
        here = [p for p in points if (p["rows"], p["features"]) == (rows, features)]
        per_round = min(here, key=lambda p: p["round_s"])["mode"]
        whole = min(here, key=lambda p: p["train_s"])["mode"]
        lines.append(f"| {rows:,} | {features} | {per_round} | {whole} |")
    lines += ["", "![seconds per round by mode](modes.png)", ""]
    atomic_write(reading, ("\n".join(lines) + "\n" + kept).encode())
    record = {"args": vars(args), "host": host_facts(), "points": points}
    atomic_write(out / "modes.json", (json.dumps(record, indent=1) + "\n").encode())
    plot(points, out / "modes.png")


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = sorted({p["features"] for p in points})
    fig, axes = plt.subplots(1, len(widths), figsize=(4.2 * len(widths), 3.6), squeeze=False)
    for ax, features in zip(axes[0], widths, strict=True):
        for mode in MODES:
            line = sorted(
                (p["rows"], p["round_s"])
                for p in points
                if p["features"] == features and p["mode"] == mode
            )
            ax.plot(*zip(*line, strict=True), marker="o", label=mode)
        ax.set(xscale="log", yscale="log", title=f"{features} features", xlabel="rows")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("seconds per round (one tree)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


if __name__ == "__main__":
    main()
