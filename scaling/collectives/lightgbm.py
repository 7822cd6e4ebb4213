"""LightGBM's socket network for a gang: the machine list, built on the members.

LightGBM's distributed learners connect every member to every other at ``machines`` (a list
of ``host:port``), each listening on its ``local_listen_port``. Each member finds a free port
on its own address and the list is all-gathered; a port can be taken by another process
between the look-up and LightGBM's bind, so each member then checks it can still bind it, and
if any cannot, all try new ports. The network is freed on leaving, even when training failed,
so that the port is not held by a worker process that runs more jobs. While a member holds
the network, its process's standard output goes to /dev/null (:class:`_Muted`).
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import lightgbm as lgb

from scaling.collectives import Backend
from scaling.collectives.tcp import allgather, own_address
from scaling.engines.worker import GangContext


class LightGBMBackend(Backend):
    """No driver side; each member yields the network parameters for ``lgb.train``."""

    attempts = 3

    @contextmanager
    def member(self, ctx: GangContext, started: None, timeout: float) -> Iterator[dict]:
        if ctx.world == 1:
            yield {}
            return
        params = {
            "num_machines": ctx.world,
            "pre_partition": True,  # each member's rows are its share: do not re-partition
            "time_out": max(1, math.ceil(timeout / 60)),  # minutes
            **self._machines(ctx, timeout),
        }
        try:
            with _MUTED:
                yield params
        finally:
            lgb.basic._LIB.LGBM_NetworkFree()

    def _machines(self, ctx: GangContext, timeout: float) -> dict:
        host = own_address(ctx.host)
        for _ in range(self.attempts):
            with socket.socket() as held:
                held.bind((host, 0))
                port = held.getsockname()[1]
                machines = allgather(ctx, f"{host}:{port}", timeout)
            if all(allgather(ctx, _can_bind(host, port), timeout)):
                return {"machines": ",".join(machines), "local_listen_port": port}
        raise RuntimeError(
            f"could not find {ctx.world} free ports for LightGBM in {self.attempts} tries"
        )


class _Muted:
    """This process's standard output (fd 1) to /dev/null while any member in it trains.

    LightGBM's network prints "[LightGBM] [Info] Listening..." from a listener thread of its
    own, which neither its log level nor a logger registered from Python reaches (both are
    per thread in its C++ code); a worker's standard output is its driver's terminal or
    notebook. Counted: the local engine's members are threads of one process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members = 0
        self._saved = -1

    def __enter__(self) -> None:
        with self._lock:
            if self._members == 0:
                sys.stdout.flush()
                self._saved = os.dup(1)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.close(null)
            self._members += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._members -= 1
            if self._members == 0:
                os.dup2(self._saved, 1)
                os.close(self._saved)


_MUTED = _Muted()


def _can_bind(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
