"""How a step's bytes travel, and what a link charges for them: the patterns a step names
(:attr:`scaling.model.steps.Step.pattern`), the latencies in sequence and the bytes through the
busiest end each one costs, and the ``alpha``-``beta`` links they are priced on (the table in
:mod:`scaling.model.costmodel` says which)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaling.errors import UsageError

PATTERNS = (
    "",
    "tree",
    "scatter",
    "allreduce",
    "ring",
    "allgather",
    "reduce-scatter",
    "alltoall",
    "server",
)
"""How a step's bytes travel ("": they do not)."""


def check_pattern(pattern: str) -> None:
    if pattern not in PATTERNS:
        raise UsageError(f"unknown pattern {pattern!r}; one of {', '.join(PATTERNS[1:])}")


@dataclass(frozen=True)
class Link:
    """A latency ``alpha`` (seconds per message) and a cost per byte ``beta`` (seconds)."""

    alpha: float
    beta: float

    def time(self, hops: float, nbytes: float) -> float:
        return hops * self.alpha + nbytes * self.beta


NETWORKS = {
    # TCP between two hosts through one switch: small-message latency as measured by
    # sockperf-style ping-pong (one way), and ~90% of the line rate for large messages.
    "10gbe": Link(alpha=25e-6, beta=1 / (0.9 * 10e9 / 8)),
    "25gbe": Link(alpha=15e-6, beta=1 / (0.9 * 25e9 / 8)),
    "100gbe": Link(alpha=8e-6, beta=1 / (0.9 * 100e9 / 8)),
}
"""Networks ``scaling predict --network`` knows, besides ``loopback`` (this host's own,
measured). Their numbers are assumptions and are printed with every answer."""


def hops(pattern: str, workers: int, nbytes: float) -> float:
    """Latencies one worker waits for, in sequence, when ``pattern`` moves ``nbytes``."""
    p = workers
    if p == 1 and pattern != "tree":
        return 0.0
    if pattern == "tree":
        return (math.ceil(math.log2(p)) if p > 1 else 0) + 1
    if pattern == "scatter":
        return 1.0
    if pattern == "allreduce":
        from scaling.collectives.allreduce import allreduce_rounds

        return float(allreduce_rounds(int(nbytes), p))
    if pattern == "ring":
        return 2.0 * (p - 1)
    if pattern in ("allgather", "reduce-scatter", "alltoall"):
        return float(p - 1)
    if pattern == "server":
        return 2.0
    return 0.0


def busiest_bytes(pattern: str, workers: int, sends: float) -> float:
    """Bytes through the busiest end of ``pattern``: what its bandwidth term pays for."""
    p = workers
    if pattern == "tree":
        return hops("tree", p, sends) * sends  # one partial result per level, in sequence
    if pattern == "scatter":
        return p * sends  # the driver writes each worker's copy
    if pattern == "server":
        # The server's link carries the others' gradients in while their parameters go out,
        # both ways at once, as the peer link was timed (an all-reduce: each member sends
        # while it receives); rank 0's own replica reaches it on its loopback.
        return (p - 1) * sends
    return sends if p > 1 else 0.0
