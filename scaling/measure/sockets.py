"""The kernel's byte counters of this process's TCP sockets: what a library's collective
really sent, whatever its code (read around gang iterations by :mod:`scaling.measure.trace`, and
per connection by the all-reduce mesh)."""

from __future__ import annotations

import os
import socket
import struct

_TCP_INFO_SIZE = 232
_BYTES_RECEIVED = 128  # offsets in Linux's struct tcp_info (include/uapi/linux/tcp.h)
_BYTES_SENT = 200  # tcpi_bytes_sent: Linux >= 4.19


def socket_bytes() -> dict[str, tuple[int, int]] | None:
    """Bytes sent and received so far on each open TCP socket of this process, by socket.

    Read from the kernel (``getsockopt(TCP_INFO)``: ``tcpi_bytes_sent``,
    ``tcpi_bytes_received``), so it counts what a library's collective really moved (payload
    bytes, TCP/IP headers excluded), whatever its code. Keys are ``host:inode``: a socket's
    inode is unique on its host, so counters gathered from several processes (or threads of
    one) can be merged without counting a socket twice. ``None`` where the kernel does not say
    (not Linux, or older than 4.19).
    """
    if not hasattr(socket, "TCP_INFO") or not os.path.isdir("/proc/self/fd"):
        return None
    host, out = socket.gethostname(), {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
            if not link.startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(fd)))
        except OSError:  # closed meanwhile
            continue
        with sock:
            if sock.type != socket.SOCK_STREAM or sock.family not in (
                socket.AF_INET,
                socket.AF_INET6,
            ):
                continue
            counted = tcp_counters(sock)
        if counted is None:
            return None
        out[f"{host}:{link[8:-1]}"] = counted
    return out


def tcp_counters(sock: socket.socket) -> tuple[int, int] | None:
    """``(tcpi_bytes_sent, tcpi_bytes_received)`` of one TCP socket (``None``: the kernel
    does not say). One system call: cheap enough to read around every iteration."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    if len(info) < _BYTES_SENT + 8:
        return None
    return struct.unpack_from("Q", info, _BYTES_SENT)[0], struct.unpack_from(
        "Q", info, _BYTES_RECEIVED
    )[0]


def both_ways(counted: tuple[int, int]) -> int:
    """What a socket's connection moved, sent and received, from one end's counters: twice
    the bytes this end received. Its sent bytes lag: what is still in the send queue when
    they are read is not counted yet (a member that read them right after its last send
    missed that message, 1 run in 3); every byte a collective sends is received before the
    receiver is done, so over all the ends the two counts agree."""
    return 2 * counted[1]


def bytes_between(
    before: dict[str, tuple[int, int]] | None, after: dict[str, tuple[int, int]] | None
) -> dict[str, int] | None:
    """Bytes each socket's connection moved (:func:`both_ways`) from ``before`` to ``after``
    (both :func:`socket_bytes`); a socket opened in between counts from zero."""
    if before is None or after is None:
        return None
    moved = {key: both_ways(n) - both_ways(before.get(key, (0, 0))) for key, n in after.items()}
    return {key: n for key, n in moved.items() if n > 0}


def merge_socket_bytes(counts: list[dict[str, int] | None]) -> int | None:
    """Total bytes over the members' counts, each socket once (threads of one process all see
    every socket of it); ``None`` when any member could not count."""
    if any(c is None for c in counts):
        return None
    merged: dict[str, int] = {}
    for c in counts:
        for key, n in c.items():
            merged[key] = max(merged.get(key, 0), n)
    return sum(merged.values())
