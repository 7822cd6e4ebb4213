"""This project's own all-reduce among gang members: the collective of the all-reduce execution
style (:mod:`scaling.execution`), for jobs' partial sums of a few bytes to a few MB.

The members connect once, a full mesh of TCP connections (``TCP_NODELAY``: a partial sum is
one small message, not to be held back by Nagle's algorithm). Then, per all-reduce, one
contiguous float64 buffer is summed in place on every member:

- under :data:`RING_BYTES`, or with 2 members: **recursive doubling** (Thakur, Rabenseifner
  and Gropp, "Optimization of Collective Communication Operations in MPICH", 2005): ceil(log2 p)
  rounds, each an exchange of the whole buffer with one partner: latency-bound, the fewest
  rounds;
- above it: **ring** (reduce-scatter, then all-gather; Patarasuk and Yuan 2009): 2 (p - 1)
  rounds of 1/p of the buffer: bandwidth-optimal, 2 (p - 1) / p of the buffer sent per member.

Every member ends with bit-identical sums, so that replicas that apply the same update to them
stay identical: IEEE addition is commutative (``a + b == b + a`` exactly), recursive doubling
adds the same two halves on both partners, and the ring sums each chunk on one member and
copies it to the others.
"""

from __future__ import annotations

import math
import pickle
import select
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import numpy as np

from scaling.collectives import Backend
from scaling.collectives.tcp import allgather, own_address
from scaling.engines.rendezvous import recv_into
from scaling.engines.worker import GangContext
from scaling.measure.sockets import tcp_moved

RING_BYTES = 1 << 18
"""Buffers from 256 kB on (with more than 2 members) go round the ring: below it, latency
(rounds) costs more than bandwidth."""
_CHUNK = 1 << 20
_RANK = struct.Struct("!I")
_SIZE = struct.Struct("!Q")


def allreduce_bytes(nbytes: int, world: int) -> int:
    """Bytes one member sends in an all-reduce of ``nbytes`` (the algorithm :class:`Mesh`
    picks for that size)."""
    if world == 1:
        return 0
    if nbytes >= RING_BYTES and world > 2:
        return math.ceil(2 * (world - 1) * nbytes / world)
    low = 1 << (world.bit_length() - 1)  # ranks past the largest power of two fold in first
    return nbytes * (math.ceil(math.log2(low)) + (1 if low < world else 0))


def allreduce_rounds(nbytes: int, world: int) -> int:
    """Messages one member waits for in sequence in an all-reduce of ``nbytes``: its latency
    count (the algorithm :class:`Mesh` picks for that size)."""
    if world == 1:
        return 0
    if nbytes >= RING_BYTES and world > 2:
        return 2 * (world - 1)
    low = 1 << (world.bit_length() - 1)  # the folded ranks send in first and get it back last
    return int(math.log2(low)) + (2 if low < world else 0)


class Mesh:
    """A TCP connection to every other member of the gang.

    Parameters
    ----------
    ctx : GangContext
        The member's rank, the world size and the gang's rendezvous address, where the
        members swap their listening addresses once.
    timeout : float
        Seconds a member waits for a peer before raising :class:`TimeoutError` (a peer that
        died never sends).
    """

    def __init__(self, ctx: GangContext, timeout: float) -> None:
        self.rank, self.world, self.timeout = ctx.rank, ctx.world, timeout
        self.peers: dict[int, socket.socket] = {}
        if self.world == 1:
            return
        with socket.create_server((own_address(ctx.host), 0), backlog=ctx.world) as server:
            server.settimeout(timeout)
            addresses = allgather(ctx, server.getsockname()[:2], timeout)
            for peer in range(self.rank):  # connect to the lower ranks, whose servers listen
                sock = socket.create_connection(addresses[peer], timeout=timeout)
                sock.sendall(_RANK.pack(self.rank))
                self._add(peer, sock)
            for _ in range(self.rank + 1, self.world):  # accept the higher ranks
                sock, _ = server.accept()
                sock.settimeout(timeout)
                (peer,) = _RANK.unpack(recv_into(sock, bytearray(_RANK.size)))
                self._add(peer, sock)

    def _add(self, peer: int, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.peers[peer] = sock

    def close(self) -> None:
        for sock in self.peers.values():
            sock.close()
        self.peers.clear()

    def bytes_moved(self) -> int | None:
        """Bytes moved so far on this member's mesh sockets, sent and received, as the kernel
        counted them (:func:`~scaling.measure.sockets.tcp_moved`; ``None`` where it does not
        say)."""
        if not hasattr(socket, "TCP_INFO"):
            return None
        total = 0
        for sock in self.peers.values():
            counted = tcp_moved(sock)
            if counted is None:
                return None
            total += counted
        return total

    # -------------------------------------------------------------------- collectives

    def allreduce(self, buffer: np.ndarray) -> np.ndarray:
        """Sum the contiguous float64 ``buffer`` over the members, in place; returns it."""
        if self.world == 1:
            return buffer
        if buffer.nbytes >= RING_BYTES and self.world > 2:
            self._ring(buffer)
        else:
            self._recursive_doubling(buffer)
        return buffer

    def allgather(self, obj: object) -> list:
        """Every member's ``obj`` (pickled), in rank order: p - 1 rounds round the ring,
        each forwarding what came in the round before."""
        blobs = {self.rank: pickle.dumps(obj, protocol=5)}
        right, left = (self.rank + 1) % self.world, (self.rank - 1) % self.world
        for step in range(self.world - 1):
            out = blobs[(self.rank - step) % self.world]
            size = bytearray(_SIZE.size)
            self._sendrecv(right, _SIZE.pack(len(out)), left, size)
            blob = bytearray(_SIZE.unpack(size)[0])
            self._sendrecv(right, out, left, blob)
            blobs[(left - step) % self.world] = bytes(blob)
        return [pickle.loads(blobs[r]) for r in range(self.world)]

    def _recursive_doubling(self, buffer: np.ndarray) -> None:
        # p not a power of two: the first 2 (p - low) ranks pair up, the even one of each pair
        # hands its buffer to the odd one and waits for the result.
        low = 1 << (self.world.bit_length() - 1)
        extra = self.world - low
        rank, incoming = self.rank, np.empty_like(buffer)
        if rank < 2 * extra:
            if rank % 2 == 0:
                self._send(rank + 1, buffer)
                self._recv(rank + 1, buffer)
                return
            self._recv(rank - 1, incoming)
            buffer += incoming
        # The virtual rank among the low participants.
        virtual = rank // 2 if rank < 2 * extra else rank - extra
        mask = 1
        while mask < low:
            partner = virtual ^ mask
            real = partner * 2 + 1 if partner < extra else partner + extra
            self._sendrecv(real, buffer, real, incoming)
            buffer += incoming
            mask <<= 1
        if rank < 2 * extra:
            self._send(rank - 1, buffer)

    def _ring(self, buffer: np.ndarray) -> None:
        p, rank = self.world, self.rank
        right, left = (rank + 1) % p, (rank - 1) % p
        chunks = np.array_split(buffer, p)
        incoming = np.empty(len(chunks[0]), buffer.dtype)
        for step in range(p - 1):  # reduce-scatter: rank ends owning chunk rank + 1, summed
            send, recv = chunks[(rank - step) % p], chunks[(rank - step - 1) % p]
            self._sendrecv(right, send, left, incoming[: len(recv)])
            recv += incoming[: len(recv)]
        for step in range(p - 1):  # all-gather: pass the summed chunks on round the ring
            send, recv = chunks[(rank + 1 - step) % p], chunks[(rank - step) % p]
            self._sendrecv(right, send, left, recv)

    # ------------------------------------------------------------------- point to point

    def _send(self, peer: int, data) -> None:
        self.peers[peer].sendall(memoryview(data).cast("B"))

    def _recv(self, peer: int, out) -> None:
        recv_into(self.peers[peer], out)

    def _sendrecv(self, to: int, data, source: int, out) -> None:
        """Send ``data`` to one peer while receiving ``out`` from another (or the same):
        both at once, so that two members sending each other more than the kernel's socket
        buffers hold cannot wait on each other for ever."""
        data, out = memoryview(data).cast("B"), memoryview(out).cast("B")
        send, recv = self.peers[to], self.peers[source]
        sent = got = 0
        while sent < len(data) or got < len(out):
            # poll, not select: a worker process may hold more than select's 1024 descriptors
            poller, wanted = select.poll(), {}
            if sent < len(data):
                wanted[send.fileno()] = select.POLLOUT
            if got < len(out):
                wanted[recv.fileno()] = wanted.get(recv.fileno(), 0) | select.POLLIN
            for fd, events in wanted.items():
                poller.register(fd, events)
            ready = dict(poller.poll(self.timeout * 1000))
            if not ready:
                raise TimeoutError(f"a gang member sent nothing for {self.timeout:.0f}s")
            if sent < len(data) and ready.get(send.fileno(), 0) & (select.POLLOUT | select.POLLERR):
                with suppress(BlockingIOError):
                    sent += send.send(data[sent : sent + _CHUNK], socket.MSG_DONTWAIT)
            if got < len(out) and ready.get(recv.fileno(), 0) & ~select.POLLOUT:
                try:
                    n = recv.recv_into(out[got:], min(len(out) - got, _CHUNK), socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                if n == 0:
                    raise ConnectionError("a gang member closed the connection")
                got += n


class MeshBackend(Backend):
    """The all-reduce execution's collective: no driver side; each member builds its mesh."""

    @contextmanager
    def member(self, ctx: GangContext, started: None, timeout: float) -> Iterator[Mesh]:
        mesh = Mesh(ctx, timeout)
        try:
            yield mesh
        finally:
            mesh.close()
