"""The peer of ring-allreduce: PyTorch DistributedDataParallel, launched by torchrun.

    torchrun --nproc_per_node 2 benchmarks/ddp_peer.py --rows 200000 --features 32 \\
        --hidden 64,64 --batch-size 512 --steps 200 --dtype float32

Each rank reads its contiguous share of the same seeded rows that this project's engines load
(partition r of p), builds the same model with the same initial weights, and trains it the way
the DDP tutorial does: DDP(model) with gloo, each rank taking its B / p rows of every global
batch from a per-epoch permutation of its own training rows (DistributedSampler's contract),
mean loss, backward (DDP all-reduces gradient buckets during it), step. One thread per rank.
Rank 0 prints one JSON line: the median over steps (after ``--warmup``) of the slowest rank's
step time, as this project's runs report it, and samples/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from jobs import sgd
from jobs.sgd.batches import local_share
from jobs.sgd.model import build_model, make_optimizer
from scaling.data import Classification, partition_bounds, row_uniforms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--hidden", default="64,64")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    config = sgd.SGDConfig(hidden=args.hidden, batch_size=args.batch_size, seed=args.seed)
    start, stop = partition_bounds(args.rows, world)[rank]
    X, y = Classification(rows=args.rows, features=args.features, seed=args.seed).read(start, stop)
    X = torch.from_numpy(np.ascontiguousarray(X, dtype=args.dtype))
    y = torch.from_numpy(y.astype(np.int64))
    train = np.flatnonzero(row_uniforms(args.seed, start, stop) >= config.holdout)

    model = DistributedDataParallel(build_model(args.features, 2, config, args.dtype))
    optimizer = make_optimizer(model.parameters(), config)
    share = local_share(args.batch_size, world, rank)
    per_epoch = len(train) // share
    order, walls = train, []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        epoch, j = divmod(step, per_epoch)
        if j == 0:
            order = train[np.random.default_rng((args.seed, epoch, rank)).permutation(len(train))]
        index = torch.from_numpy(order[j * share : (j + 1) * share])
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(X[index]), y[index]).backward()
        optimizer.step()
        walls.append(time.perf_counter() - t0)
    # A step takes as long as its slowest rank: the statistic this project's runs report.
    gathered = [torch.empty(len(walls), dtype=torch.float64) for _ in range(world)]
    dist.all_gather(gathered, torch.tensor(walls, dtype=torch.float64))
    slowest = torch.stack(gathered).max(dim=0).values.tolist()
    if rank == 0:
        median = statistics.median(slowest[args.warmup :])
        print(
            json.dumps(
                {
                    "workers": world,
                    "per_step": median,
                    "samples_per_s": args.batch_size / median,
                    "threads": torch.get_num_threads(),
                    "omp": os.environ.get("OMP_NUM_THREADS"),
                }
            ),
            flush=True,
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
