"""TCP for gang members: all-gather and all-to-all of Python objects, and message framing (the
kernel's byte counters of these sockets are in :mod:`scaling.measure.sockets`).

Rank 0 listens on the gang's rendezvous port; every other rank connects, sends its object,
and receives the list of all of them. Libraries with their own collectives (XGBoost's tracker,
LightGBM's socket network, torch.distributed) need little more than this to bootstrap: e.g. each
member finds a free port and all-gathers ``host:port`` to build the machine list.

Notes
-----
A star through rank 0: 2 (p - 1) messages, the object of every rank passes rank 0 twice;
fine for addresses and small vectors, and for a one-time exchange of data (feature-parallel
training's replica), not for per-iteration model-sized payloads.
"""

from __future__ import annotations

import pickle
import socket
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaling.engines.worker import GangContext

_HEADER = struct.Struct("!Q")


def allgather(ctx: GangContext, obj: Any, timeout: float = 60.0) -> list:
    """Every member's ``obj``, in rank order, on every member.

    Raises
    ------
    TimeoutError
        When the other members do not all arrive within ``timeout`` seconds (a gang whose
        members do not run at the same time never completes).
    """
    return _exchange(ctx, obj, lambda objs, rank: objs, timeout)


def alltoall(ctx: GangContext, blocks: list, timeout: float = 60.0) -> list:
    """``blocks[j]`` goes to rank j; returns the blocks sent to this member, in rank order.

    Notes
    -----
    Through rank 0 as well: each block crosses the network at most twice, and a member
    receives only what is addressed to it (a column block, say, not every column).
    """
    if len(blocks) != ctx.world:
        raise ValueError(f"alltoall needs one block per member ({ctx.world}), got {len(blocks)}")
    return _exchange(ctx, blocks, lambda objs, rank: [b[rank] for b in objs], timeout)


def _exchange(ctx: GangContext, obj: Any, pick: Callable[[list, int], Any], timeout: float):
    """Gather every member's ``obj`` at rank 0, and send rank r ``pick(objs, r)``."""
    if ctx.world == 1:
        return pick([obj], 0)
    if ctx.rank == 0:
        return _gather_at_root(ctx, obj, pick, timeout)
    deadline = time.monotonic() + timeout
    while True:
        # Rank 0 may not be listening yet, or (a gang that exchanges more than once) still be
        # closing the previous exchange's server, which resets connections it never accepted.
        try:
            with socket.create_connection((ctx.host, ctx.port), timeout=timeout) as sock:
                _send(sock, (ctx.rank, obj))
                return _recv(sock)
        except ConnectionError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"rank 0 never listened on {ctx.host}:{ctx.port}") from None
            time.sleep(0.05)


def own_address(peer: str) -> str:
    """This host's address on the route to ``peer`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((peer, 9))
        return s.getsockname()[0]


def _gather_at_root(ctx: GangContext, obj: Any, pick: Callable, timeout: float) -> Any:
    with socket.create_server((ctx.host, ctx.port), backlog=ctx.world) as server:
        server.settimeout(timeout)
        peers, values, ranks = [], {0: obj}, {}
        try:
            for _ in range(ctx.world - 1):
                conn, _ = server.accept()
                conn.settimeout(timeout)
                rank, value = _recv(conn)
                values[rank] = value
                ranks[conn] = rank
                peers.append(conn)
            gathered = [values[r] for r in range(ctx.world)]
            for conn in peers:
                _send(conn, pick(gathered, ranks[conn]))
        except TimeoutError:
            raise TimeoutError(
                f"only {len(values)} of {ctx.world} gang members arrived within {timeout:.0f}s"
            ) from None
        finally:
            for conn in peers:
                conn.close()
    return pick(gathered, 0)


def _send(sock: socket.socket, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=5)
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv(sock: socket.socket) -> Any:
    (size,) = _HEADER.unpack(recv_into(sock, bytearray(_HEADER.size)))
    return pickle.loads(recv_into(sock, bytearray(size)))


def recv_into(sock: socket.socket, buffer) -> memoryview:
    """Fill ``buffer`` (any writable buffer: a bytearray, a NumPy array) from ``sock``.

    Raises
    ------
    ConnectionError
        When the peer closes the connection first.
    """
    view = memoryview(buffer).cast("B")
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:], min(len(view) - got, 1 << 20))
        if n == 0:
            raise ConnectionError("a gang member closed the connection")
        got += n
    return view
