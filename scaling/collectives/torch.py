"""torch.distributed's gloo collective for a gang, without torch's process-wide state.

``torch.distributed.init_process_group`` sets one default group per process, which a worker
that runs many gangs (a Ray actor, a Dask worker, a reused Spark Python worker; threads of the
local engine) cannot have twice; a ``ProcessGroupGloo`` object is just an object. The group
meets at a ``TCPStore`` that rank 0 serves on its own address, which it all-gathers through
the gang's rendezvous.
"""

from __future__ import annotations

import datetime
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from scaling.collectives import Backend
from scaling.collectives.tcp import allgather, own_address
from scaling.engines.worker import GangContext


class Group:
    """A gloo process group of the gang's members (in a gang of one, collectives do nothing).

    Collectives are asynchronous: the caller times its :meth:`wait` calls, the communication
    that computation did not hide.
    """

    def __init__(self, ctx: GangContext, timeout: float) -> None:
        self.rank, self.world = ctx.rank, ctx.world
        self.address = own_address(ctx.host)
        delta = datetime.timedelta(seconds=timeout)
        server = _listening(self.address, ctx.world) if ctx.rank == 0 else None
        where = server.getsockname()[:2] if server else None
        host, port = allgather(ctx, where, timeout)[0]
        self.store = dist.TCPStore(
            host,
            port,
            ctx.world,
            ctx.rank == 0,
            timeout=delta,
            wait_for_workers=True,
            master_listen_fd=server.detach() if server else None,
        )
        self.pg = None
        if ctx.world > 1:
            options = dist.ProcessGroupGloo._Options()
            options._devices = [dist.ProcessGroupGloo.create_device(hostname=self.address)]
            options._timeout = delta
            self.pg = dist.ProcessGroupGloo(self.store, ctx.rank, ctx.world, options)

    def allreduce(self, tensor: torch.Tensor):
        """Sum ``tensor`` in place over the members, asynchronously: a work handle to
        :meth:`wait` on (``None`` in a gang of one)."""
        return self.pg.allreduce([tensor]) if self.pg else None

    def wait(self, work) -> None:
        """Wait for an asynchronous collective (``None``: nothing to wait for)."""
        if work is not None:
            work.wait()

    def sum(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64)
        self.wait(self.allreduce(t))
        return t.tolist()

    def broadcast(self, tensor: torch.Tensor, root: int = 0) -> None:
        if self.pg:
            options = dist.BroadcastOptions()
            options.rootRank = root
            self.wait(self.pg.broadcast([tensor], options))


def _listening(address: str, world: int) -> socket.socket:
    """A socket listening on rank 0's own address, for its store: a TCPStore that binds its
    own listens on every interface (``::``); the store takes the socket's descriptor."""
    return socket.create_server((address, 0), backlog=world)


class TorchBackend(Backend):
    """gloo over TCP: no driver side; each member builds its :class:`Group`."""

    @contextmanager
    def member(self, ctx: GangContext, started: None, timeout: float) -> Iterator[Group]:
        yield Group(ctx, timeout)
