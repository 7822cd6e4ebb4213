"""Addresses: free ports, the driver's address as workers see it, reaching a cluster."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from scaling.errors import EngineError, UsageError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv4-mapped ``::ffff:127.0.0.1`` too) is this
    machine's loopback."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def driver_host() -> str:
    """The driver's address on the network the workers share (``SCALING_DRIVER_HOST``
    overrides the host name's address)."""
    return os.environ.get("SCALING_DRIVER_HOST", socket.gethostbyname(socket.gethostname()))


def _parts(address: str):
    """A cluster address, with or without its scheme, split into its parts."""
    return urlsplit(address if "://" in address else f"//{address}")


def answers(address: str, timeout: float = 2.0) -> bool:
    """Whether something still accepts a connection at a cluster's ``address`` (checked with
    :func:`check_reachable` when it was first used)."""
    parts = _parts(address)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=timeout).close()
    except (OSError, ValueError):
        return False
    return True


def check_reachable(
    engine: str, address: str, schemes: tuple[str, ...], timeout: float = 3.0
) -> None:
    """Fail fast, with a fix, when nothing listens at a cluster address."""
    if not schemes:
        raise UsageError(
            f"the {engine} engine runs in this process and takes no --address; leave it "
            "out, or pick an engine that reaches a cluster (ray, dask or spark)"
        )
    parts = _parts(address)
    if "://" in address and parts.scheme not in schemes:
        raise UsageError(
            f"{engine} address {address!r} has scheme {parts.scheme!r}; "
            f"use one of {', '.join(s + '://' for s in schemes)}"
        )
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise UsageError(
            f"{engine} address {address!r} needs a host and a port, "
            f"e.g. {schemes[0]}://127.0.0.1:PORT"
        )
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise EngineError(
            f"cannot reach a {engine} cluster at {address} ({e.strerror or e}); start one "
            f"(`scaling cluster start {engine}`) or omit --address for an embedded local cluster"
        ) from e
