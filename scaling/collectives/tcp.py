"""All-gather and all-to-all of Python objects among gang members, through the gang's
rendezvous on the driver (:mod:`scaling.engines.rendezvous`).

Libraries with their own collectives (XGBoost's tracker, LightGBM's socket network,
torch.distributed) need little more than this to bootstrap: e.g. each member finds a free port
and all-gathers ``host:port`` to build the machine list.

Notes
-----
A star through the driver: 2 p messages, every rank's object crosses the network twice; fine
for addresses and small vectors, and for a one-time exchange of data (feature-parallel
training's replica), not for per-iteration model-sized payloads.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from scaling.engines.rendezvous import exchange

if TYPE_CHECKING:
    from scaling.engines.worker import GangContext


def allgather(ctx: GangContext, obj: Any, timeout: float = 60.0) -> list:
    """Every member's ``obj``, in rank order, on every member.

    Raises
    ------
    TimeoutError
        When the other members do not all arrive within ``timeout`` seconds (a gang whose
        members do not run at the same time never completes).
    """
    if ctx.world == 1:
        return [obj]
    return exchange(ctx.host, ctx.port, ctx.rank, "allgather", obj, timeout)


def alltoall(ctx: GangContext, blocks: list, timeout: float = 60.0) -> list:
    """``blocks[j]`` goes to rank j; returns the blocks sent to this member, in rank order.

    Notes
    -----
    Through the driver as well: each block crosses the network at most twice, and a member
    receives only what is addressed to it (a column block, say, not every column).
    """
    if len(blocks) != ctx.world:
        raise ValueError(f"alltoall needs one block per member ({ctx.world}), got {len(blocks)}")
    if ctx.world == 1:
        return blocks
    return exchange(ctx.host, ctx.port, ctx.rank, "alltoall", blocks, timeout)


def own_address(peer: str) -> str:
    """This host's address on the route to ``peer`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((peer, 9))
        return s.getsockname()[0]
