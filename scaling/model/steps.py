"""``scaling explain``: what one iteration of a job does, where, and what it sends.

Each job declares its iteration as named steps (``explain(rows, features, workers, config)``
returns a list of :class:`Step`); every step names the function that does it, so that what
``explain`` says is what the code runs (a test checks the names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step of an iteration.

    ``kind`` is map, combine or update; ``where`` says which processes run it; ``flops`` is the
    work of the busiest process and ``reads`` the bytes of data it reads (its place on the
    roofline; 0: compute-bound); ``sends`` the bytes one of them sends on (an update: to each
    worker; a collective among the workers: all that one worker sends in it), in the
    ``pattern`` of :data:`scaling.model.patterns.PATTERNS` (``""``: nothing moves), ``repeats``
    times per iteration (a boosted tree all-reduces one histogram per node; local SGD a model
    every H steps: 1 / H). ``transport``: whose sockets carry them, ``""`` for this project's
    (the engine's calls, its all-reduce mesh, its sockets: what ``scaling calibrate``
    measures) or the library that brings its own (``gloo``, ``xgboost``, ``lightgbm``).
    """

    kind: str
    function: str
    where: str
    does: str
    flops: float
    sends: int
    pattern: str = ""
    reads: float = 0.0
    repeats: float = 1.0
    transport: str = ""

    def __post_init__(self) -> None:
        from scaling.model.patterns import check_pattern

        check_pattern(self.pattern)


def function_of(job: str, dotted: str):
    """The function a step names: ``dotted`` in the job's package (a function, a module's
    function, a class's method), or an absolute name
    (``scaling.collectives.torch.Group.allreduce``)."""
    import importlib

    for base in (f"jobs.{job}", None):
        names = dotted.split(".")
        module = importlib.import_module(base) if base else None
        while names and (module is None or not hasattr(module, names[0])):
            try:  # a submodule not imported yet
                prefix = f"{module.__name__}." if module else ""
                module = importlib.import_module(prefix + names[0])
                names.pop(0)
            except ImportError:
                break
        target = module
        try:
            for attr in names:
                target = getattr(target, attr)
        except AttributeError:
            continue
        return target
    raise LookupError(f"{dotted} names nothing in jobs.{job}")


def tree_depth(workers: int) -> int:
    """Levels of a pairwise combine tree over ``workers`` partial results."""
    return math.ceil(math.log2(workers)) if workers > 1 else 0


def for_execution(steps: list[Step], execution: str, workers: int) -> list[Step]:
    """A driver loop's steps (map, combine tree, update on the driver) as the ``execution``
    runs them: with ``allreduce`` the combine is an all-reduce among the workers and every
    worker applies the update (:mod:`scaling.execution`)."""
    if execution == "driver":
        return steps
    from scaling.collectives.allreduce import RING_BYTES, allreduce_bytes

    out = []
    for s in steps:
        if s.kind == "combine":
            ring = s.sends >= RING_BYTES and workers > 2
            rounds = tree_depth(workers)
            how = "ring" if ring else f"recursive doubling, {rounds} round" + "s" * (rounds != 1)
            s = Step(
                kind="combine",
                function="scaling.collectives.allreduce.Mesh.allreduce",
                where=f"peers, {how}",
                does="sum the partial results in place on every worker, peer to peer",
                flops=s.flops,
                sends=allreduce_bytes(s.sends, workers),
                pattern="allreduce",
            )
        elif s.kind == "map":
            s = replace(s, sends=0)  # its result stays on the worker, for the all-reduce
        elif s.kind == "update":
            does = s.does.split(";")[0] + " (every replica)"
            s = replace(s, where="every worker", does=does, sends=0, pattern="")
        out.append(s)
    return out


def moved(steps: list[Step], workers: int) -> tuple[float, float, float]:
    """Bytes one iteration moves, all workers together: up the combine tree, down from the
    driver, and peer to peer.

    Each worker's partial result travels once up the tree (p - 1 hops, then the root to the
    driver), and the driver ships the update back to each worker. A collective among the
    workers (a ring all-reduce, say) has no driver: its bytes go peer to peer.
    """
    up = workers * sum(s.sends for s in steps if s.kind == "map")
    down = workers * sum(s.sends for s in steps if s.kind == "update")
    peer = workers * sum(s.sends for s in steps if s.where.startswith(("ring", "peers")))
    return up, down, peer
