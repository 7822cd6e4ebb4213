"""The kernel's byte counters of this process's TCP sockets: what a library's collective
really sent, whatever its code (read around gang iterations by :mod:`scaling.measure.trace`, and
per connection by the all-reduce mesh)."""

from __future__ import annotations

import os
import socket
import struct

_TCP_INFO_SIZE = 232
# offsets in Linux's struct tcp_info (include/uapi/linux/tcp.h)
_NOTSENT = 144  # tcpi_notsent_bytes (u32): written, still in the send queue
_BYTES_SENT = 200  # tcpi_bytes_sent (u64): Linux >= 4.19


def socket_bytes() -> dict[str, int] | None:
    """Bytes moved so far on each open TCP socket of this process, by socket
    (:func:`tcp_moved`).

    Read from the kernel (``getsockopt(TCP_INFO)``), so it counts what a library's collective
    really moved (payload bytes, TCP/IP headers excluded), whatever its code. Keys are
    ``host:inode``: a socket's inode is unique on its host, so counters gathered from several
    processes (or threads of one) can be merged without counting a socket twice. ``None``
    where the kernel does not say (not Linux, or older than 4.19).
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
            counted = tcp_moved(sock)
        if counted is None:
            return None
        out[f"{host}:{link[8:-1]}"] = counted
    return out


def tcp_moved(sock: socket.socket) -> int | None:
    """What one TCP socket's connection moved, sent and received, counted at this end as
    twice what it wrote (``tcpi_bytes_sent`` plus ``tcpi_notsent_bytes``, the send queue's);
    ``None`` where the kernel does not say. Over all the ends that is the sum of sent and
    received, counted where it happens: a member's writes fall inside its own iterations,
    what it receives need not (a faster peer's next message can arrive between two of them:
    one message in four iterations went missing that way, 1 run in 3 here). One system call:
    cheap enough to read around every iteration."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    if len(info) < _BYTES_SENT + 8:
        return None
    sent = struct.unpack_from("Q", info, _BYTES_SENT)[0]
    return 2 * (sent + struct.unpack_from("I", info, _NOTSENT)[0])


def bytes_between(
    before: dict[str, int] | None, after: dict[str, int] | None
) -> dict[str, int] | None:
    """Bytes each socket's connection moved from ``before`` to ``after`` (both
    :func:`socket_bytes`); a socket opened in between counts from zero."""
    if before is None or after is None:
        return None
    moved = {key: n - before.get(key, 0) for key, n in after.items()}
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
