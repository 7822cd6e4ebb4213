"""A dashboard of a scale model's head, on this host's loopback.

The head's address exists only inside the scale model's namespaces, so a browser on the host
cannot reach it. ``python -m scaling.run.forward FD HOST PORT`` runs inside the head's namespace
with a socket that listens on the host's loopback, opened before it entered (file descriptor
``FD``): a socket keeps the namespace it was made in. Each connection it accepts is carried to
``HOST:PORT`` in the head's namespace, both ways, until either end closes.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(1 << 16):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _carry(client: socket.socket, host: str, port: int) -> None:
    try:
        server = socket.create_connection((host, port), timeout=10)
    except OSError:
        client.close()
        return
    server.settimeout(None)
    back = threading.Thread(target=_pump, args=(server, client), daemon=True)
    back.start()
    _pump(client, server)
    back.join()
    client.close()
    server.close()


def serve(listener: socket.socket, host: str, port: int) -> None:
    """Carry every connection ``listener`` accepts to ``host:port``; forever."""
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_carry, args=(client, host, port), daemon=True).start()


def listening() -> socket.socket:
    """A socket listening on a free port of this host's loopback, inheritable."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.set_inheritable(True)
    return listener


if __name__ == "__main__":
    fd, target, target_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    serve(socket.socket(fileno=fd), target, target_port)
