"""A minimal collective for gang members: all-gather of small objects over TCP.

Rank 0 listens on the gang's rendezvous port; every other rank connects, sends its object,
and receives the list of all of them. Libraries with their own collectives (XGBoost's tracker,
LightGBM's socket network, torch.distributed) need little more than this to bootstrap: e.g. each
member finds a free port and all-gathers ``host:port`` to build the machine list.

Notes
-----
A star through rank 0: 2 (p - 1) messages, the object of every rank passes rank 0 twice;
fine for addresses and small vectors, not for model-sized payloads.
"""

from __future__ import annotations

import pickle
import socket
import struct
import time
from typing import Any

from scaling.engines.base import GangContext

_HEADER = struct.Struct("!Q")


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
    if ctx.rank == 0:
        return _gather_at_root(ctx, obj, timeout)
    deadline = time.monotonic() + timeout
    while True:  # rank 0 may not be listening yet
        try:
            sock = socket.create_connection((ctx.host, ctx.port), timeout=timeout)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"rank 0 never listened on {ctx.host}:{ctx.port}") from None
            time.sleep(0.05)
    with sock:
        _send(sock, (ctx.rank, obj))
        return _recv(sock)


def _gather_at_root(ctx: GangContext, obj: Any, timeout: float) -> list:
    with socket.create_server((ctx.host, ctx.port), backlog=ctx.world) as server:
        server.settimeout(timeout)
        peers, values = [], {0: obj}
        try:
            for _ in range(ctx.world - 1):
                conn, _ = server.accept()
                conn.settimeout(timeout)
                rank, value = _recv(conn)
                values[rank] = value
                peers.append(conn)
            gathered = [values[r] for r in range(ctx.world)]
            for conn in peers:
                _send(conn, gathered)
        except TimeoutError:
            raise TimeoutError(
                f"only {len(values)} of {ctx.world} gang members arrived within {timeout:.0f}s"
            ) from None
        finally:
            for conn in peers:
                conn.close()
    return gathered


def _send(sock: socket.socket, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=5)
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv(sock: socket.socket) -> Any:
    (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    return pickle.loads(_recv_exactly(sock, size))


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("gang member closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
