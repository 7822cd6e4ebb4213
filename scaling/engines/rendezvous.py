"""Where a gang's members meet: a rendezvous on the driver, and the framing of its messages.

A gang's members run on workers the driver picked, on machines that need not be the driver's:
no member can bind the driver's address. So the driver listens, for the gang's lifetime
(:class:`Rendezvous`, started by :meth:`Engine.gang <scaling.engines.base.Engine.gang>`), and
every member is told its address. An exchange is one round: every member connects, sends its
rank and object, and receives its share once all ``world`` have arrived (:func:`exchange`).
Libraries with collectives of their own need no more than this to bootstrap: each member
all-gathers the address it listens on. Horovod's rendezvous server on the driver and XGBoost's
tracker work the same way.

Notes
-----
A star through the driver: 2 p messages per exchange, every object crosses the network twice
(to the driver, and to each member that receives it). Fine for addresses and small vectors,
and for a one-time exchange of data (feature-parallel training's replica), not for
per-iteration model-sized payloads: those go peer to peer
(:class:`~scaling.collectives.allreduce.Mesh`).
"""

from __future__ import annotations

import pickle
import socket
import struct
import threading
from contextlib import suppress
from typing import Any

from scaling.engines.worker import GangContext
from scaling.errors import GangTimeout

_HEADER = struct.Struct("!Q")
_POLL = 0.2  # seconds between looks at the closed flag while no member connects

PICKS = {
    "allgather": lambda objs, rank: objs,
    "alltoall": lambda objs, rank: [blocks[rank] for blocks in objs],
}
"""What rank ``rank`` receives of every member's object, by kind of exchange."""


class Rendezvous:
    """A thread on the driver that completes a gang's exchanges, one round at a time.

    Parameters
    ----------
    host : str
        The driver's address as the members reach it.
    world : int
        Members in the gang: a round completes when this many have sent.
    timeout : float
        Seconds to wait for the rest of a member's message once it has connected.

    Notes
    -----
    No round number is needed: a member sends its next object only after it has received the
    last round's share, and the thread reads the next round's connections only after it has
    sent every share of the last.
    """

    def __init__(self, host: str, world: int, timeout: float) -> None:
        self.world, self.timeout = world, timeout
        self._server = socket.create_server((host, 0), backlog=world)
        self._server.settimeout(_POLL)
        self.host, self.port = self._server.getsockname()[:2]
        self._closed = threading.Event()
        self.rounds = 0  # exchanges completed
        self.waiting: set[int] = set()  # ranks that have sent in the exchange under way
        self._thread = threading.Thread(target=self._serve, name="gang-rendezvous", daemon=True)
        self._thread.start()

    def __enter__(self) -> Rendezvous:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop; members still waiting for a share see their connection closed."""
        self._closed.set()
        self._thread.join()
        self._server.close()

    def contexts(self) -> list[GangContext]:
        """What each member is told: its rank, the world size and where to meet."""
        return [
            GangContext(rank=r, world=self.world, host=self.host, port=self.port)
            for r in range(self.world)
        ]

    def timed_out(self) -> GangTimeout:
        """The error of a gang that did not finish within the timeout, saying what this
        rendezvous saw of it: which ranks never reached an exchange, or after which the
        members stopped meeting."""
        seen = "a member died or never joined"
        if self.waiting:
            missing = ", ".join(map(str, sorted(set(range(self.world)) - self.waiting)))
            seen = f"rank {missing} never reached exchange {self.rounds + 1}; {seen}"
        elif self.rounds:
            seen = f"a member died or is stuck after exchange {self.rounds}"
        return GangTimeout(f"gang did not finish within {self.timeout:.0f}s: {seen}")

    def _serve(self) -> None:
        waiting: dict[int, tuple[socket.socket, str, Any]] = {}
        try:
            while not self._closed.is_set():
                try:
                    conn, _ = self._server.accept()
                except TimeoutError:
                    continue
                conn.settimeout(self.timeout)
                try:
                    rank, how, obj = recv_obj(conn)
                except (OSError, EOFError, pickle.UnpicklingError):  # a member that died
                    conn.close()
                    continue
                waiting[rank] = (conn, how, obj)
                self.waiting = set(waiting)
                if len(waiting) == self.world:
                    objs = [waiting[r][2] for r in range(self.world)]
                    for rank, (conn, how, _) in waiting.items():
                        with suppress(OSError), conn:  # one gone does not stop the others
                            send_obj(conn, PICKS[how](objs, rank))
                    waiting, self.waiting = {}, set()
                    self.rounds += 1
        finally:
            for conn, _, _ in waiting.values():
                conn.close()


def exchange(host: str, port: int, rank: int, how: str, obj: Any, timeout: float) -> Any:
    """Send ``obj`` to the rendezvous at ``host:port`` as rank ``rank``; the share ``how``
    (a key of :data:`PICKS`) gives this rank once every member has sent.

    Raises
    ------
    TimeoutError
        When the other members do not all arrive within ``timeout`` seconds (a gang whose
        members do not run at the same time never completes).
    ConnectionError
        When the rendezvous closes first: the driver gave up on the gang.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            send_obj(sock, (rank, how, obj))
            return recv_obj(sock)
    except TimeoutError:
        raise TimeoutError(
            f"the gang's other members did not all reach its rendezvous at {host}:{port} "
            f"within {timeout:.0f}s"
        ) from None
    except ConnectionError:
        raise ConnectionError(
            f"the gang's rendezvous at {host}:{port} closed: the driver gave up on the gang"
        ) from None


def send_obj(sock: socket.socket, obj: Any) -> None:
    """Send ``obj`` pickled, after its length."""
    data = pickle.dumps(obj, protocol=5)
    sock.sendall(_HEADER.pack(len(data)) + data)


def recv_obj(sock: socket.socket) -> Any:
    """The next object :func:`send_obj` sent on ``sock``."""
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
