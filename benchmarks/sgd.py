"""Data-parallel SGD, side by side: ring-allreduce vs PyTorch DDP, and the driver's cost.

    .venv/bin/python benchmarks/sgd.py                    # the recorded run
    .venv/bin/python benchmarks/sgd.py --repeat 1 --steps 50 --engines ray   # a quick look

Identical data, model, initial weights and global batch for everyone: the seeded
classification rows (200,000 x 32, float32), an MLP, SGD lr 0.1. Sizes: a small model and
batch (64-64, B = 512) and a larger one (256-256, B = 4096). Contenders at 1 and 2
single-thread workers:

- this project's ``ring-allreduce`` on each engine (gloo inside the engine's gang);
- PyTorch DistributedDataParallel launched by ``torchrun --nproc_per_node p`` (gloo,
  benchmarks/ddp_peer.py);
- this project's ``driver-allreduce`` on each engine (a map-reduce and a driver step per step).

The statistic, for everyone: per step, the slowest worker's wall time; its median over the
steps after a warm-up; the median of that over ``--repeat`` rounds; samples/s = B / it. The
rounds interleave the contenders, so that the machine's noise falls on all of them.
Writes ``benchmarks/results/sgd.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from common import RESULTS, host_line

from jobs import sgd
from scaling.engines import make_engine
from scaling.engines.net import free_port
from scaling.engines.worker import THREAD_ENV
from scaling.measure.host import host_facts
from scaling.present.text import text_table
from scaling.results import atomic_write

SIZES = {"small (64-64, B=512)": ("64,64", 512), "large (256-256, B=4096)": ("256,256", 4096)}
WARMUP = 10


def ddp(rows: int, features: int, hidden: str, batch: int, steps: int, workers: int) -> float:
    """Median step time of DDP under torchrun (see benchmarks/ddp_peer.py)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun),
        f"--nproc_per_node={workers}",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(Path(__file__).with_name("ddp_peer.py")),
        f"--rows={rows}",
        f"--features={features}",
        f"--hidden={hidden}",
        f"--batch-size={batch}",
        f"--steps={steps}",
        f"--warmup={WARMUP}",
    ]
    for _ in range(3):  # gloo's rendezvous under torchrun now and then aborts here; retry
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, **THREAD_ENV}
        )
        if done.returncode == 0:
            return json.loads(done.stdout.strip().splitlines()[-1])["per_step"]
        command[3] = f"--master_port={free_port()}"
        print("  torchrun failed; retrying", file=sys.stderr)
    raise RuntimeError(f"torchrun failed 3 times:\n{done.stderr[-3000:]}")


def ours(engine, ds, config: sgd.SGDConfig) -> float:
    """Median over steps (after the warm-up) of the slowest worker's step time."""
    engine.trace.reset()
    sgd.JOB.fit(engine, ds, config)
    walls = [s["wall"] for s in engine.trace.summaries(sgd.ITERATION)][WARMUP:]
    return statistics.median(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200, help="measured steps per run")
    parser.add_argument("--driver-steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default="ray,dask,spark")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    engines = args.engines.split(",")
    source = sgd.JOB.synthetic(args.rows, args.features, 0, None)
    times: dict[tuple, list[float]] = {}

    def add(key: tuple, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)
        print(f"  {key}: {seconds * 1e3:.2f} ms/step", file=sys.stderr, flush=True)

    for round_ in range(args.repeat):
        print(f"round {round_ + 1} of {args.repeat}", file=sys.stderr)
        for workers in (1, 2):
            for size, (hidden, batch) in SIZES.items():
                seconds = ddp(args.rows, args.features, hidden, batch, args.steps, workers)
                add((size, workers, "ddp"), seconds)
            for name in engines:
                with make_engine(name, workers) as engine:
                    ds = engine.load(source, dtype="float32")
                    for size, (hidden, batch) in SIZES.items():
                        ring = sgd.SGDConfig(
                            hidden=hidden,
                            batch_size=batch,
                            max_steps=WARMUP + args.steps,
                            eval_every=10**9,
                        )
                        add((size, workers, f"ring/{name}"), ours(engine, ds, ring))
                        driver = replace(
                            ring, strategy="driver-allreduce", max_steps=WARMUP + args.driver_steps
                        )
                        add((size, workers, f"driver/{name}"), ours(engine, ds, driver))
    medians = {k: statistics.median(v) for k, v in times.items()}
    table = [("size", "p", "DDP samples/s", *(f"ring {e}: /DDP" for e in engines),
              *(f"driver {e}: /ring" for e in engines))]  # fmt: skip
    for size, (_, batch) in SIZES.items():
        for workers in (1, 2):
            peer = medians[(size, workers, "ddp")]
            row = [size, str(workers), f"{batch / peer:,.0f}"]
            for e in engines:  # samples/s ratio = inverse time ratio
                row.append(f"{peer / medians[(size, workers, f'ring/{e}')]:.2f}")
            for e in engines:
                ring = medians[(size, workers, f"ring/{e}")]
                row.append(f"{ring / medians[(size, workers, f'driver/{e}')]:.2f}")
            table.append(tuple(row))
    text = text_table(table)
    print(text)
    command = "    .venv/bin/python benchmarks/sgd.py " + " ".join(sys.argv[1:])
    report = "\n".join(
        [
            "# Data-parallel SGD: ring-allreduce vs PyTorch DDP, and the driver's cost",
            "",
            f"Host: {host_line()}. Data: {args.rows:,} x {args.features} float32; "
            f"{args.steps} measured steps (driver-allreduce {args.driver_steps}) after "
            f"{WARMUP} warm-up; median of {args.repeat} interleaved rounds. Made by:",
            "",
            command.rstrip(),
            "",
            "`ring X: /DDP` is this project's ring-allreduce samples/s on engine X over DDP's "
            "(target >= 0.9). `driver X: /ring` is driver-allreduce samples/s over "
            "ring-allreduce's on the same engine: what a driver round trip per step costs.",
            "",
            "```",
            text,
            "```",
            "",
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "sgd.md", report.encode())
    raw = {
        "host": host_facts(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "per_step_seconds": {"|".join(map(str, k)): v for k, v in times.items()},
    }
    atomic_write(args.out / "sgd.json", json.dumps(raw, indent=1).encode())


if __name__ == "__main__":
    main()
