"""LightGBM's socket network for a gang: the machine list, built on the members.

LightGBM's distributed learners connect every member to every other at ``machines`` (a list
of ``host:port``), each listening on its ``local_listen_port``. Each member finds a free port
on its own address and the list is all-gathered; a port can be taken by another process
between the look-up and LightGBM's bind, so each member then checks it can still bind it, and
if any cannot, all try new ports. The network is freed on leaving, even when training failed,
so that the port is not held by a worker process that runs more jobs.
"""

from __future__ import annotations

import math
import socket
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


def _can_bind(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
