"""Asynchronous SGD through a parameter server (Dean et al., "Large Scale Distributed Deep
Networks", 2012).

Rank 0 also runs a server thread that holds the parameters and the optimiser; every replica
pushes the gradient of a local batch and pulls the parameters back, without waiting for the
others. A gradient computed on parameters ``s`` updates old is ``s`` stale; staleness is
recorded per update. The server receives p P numbers per global step: the bottleneck that
sharding the parameters over several servers relieves.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np
import torch

from jobs.sgd.batches import LocalBatches, Shard, local_share
from jobs.sgd.config import SGDConfig, count_parameters
from jobs.sgd.gang import GangBrief, GangStrategy, dump, load, outcome
from jobs.sgd.model import Replica
from jobs.sgd.strategy import Clock
from scaling.collectives.torch import Group
from scaling.engines.rendezvous import recv_into
from scaling.measure.trace import StepLog
from scaling.model.steps import Step

_HEADER = struct.Struct("!q")  # a parameter version (or -1: this worker is done)


class ParameterServer(GangStrategy):
    name = "parameter-server"
    split = "compute and the push-pull round trip to the server, timed inside each worker"
    resumable = True  # from the server's state; each replica from the pushes it had made

    def member(
        self, group: Group, shard: Shard, replica: Replica, job: GangBrief, log: StepLog
    ) -> dict:
        """Per local step a replica computes ~B / p rows (O(B P / p) flops) and exchanges
        2 P numbers with the server."""
        config = job.config
        latest = job.latest()  # the server's state, and the pushes each replica had made
        start, version = 0, 0
        if latest is not None:
            replica.set(latest[1]["params"])
            start, version = latest[1]["pushes"][group.rank], latest[1]["version"]
        log.open()
        server = None
        if group.rank == 0:
            server = _Server(replica, job, group, latest and latest[1])
            group.store.set("ps", server.address)
        host, port = group.store.get("ps").decode().rsplit(":", 1)
        size = local_share(config.batch_size, group.world, group.rank)
        batches = LocalBatches(shard, size, config.seed, group.rank)
        params = replica.flat.numpy()
        grad = replica.grad.numpy()
        with socket.create_connection((host, int(port)), timeout=config.timeout) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(_HEADER.pack(group.rank))  # who pushes on this connection
            for step in range(start, config.max_steps):
                t0 = time.perf_counter()
                X, y = shard.batch(batches(step))
                t1 = time.perf_counter()
                replica.grad_sum(X, y)
                replica.grad.mul_(1.0 / max(len(X), 1))
                t2 = time.perf_counter()
                sock.sendall(_HEADER.pack(version))
                sock.sendall(memoryview(grad).cast("B"))
                (version,) = _HEADER.unpack(recv_into(sock, bytearray(_HEADER.size)))
                recv_into(sock, params)
                t3 = time.perf_counter()
                log.add(t3 - t0, t2 - t1, t3 - t2)
            sock.sendall(_HEADER.pack(-1))
            if server:  # the server's sockets carry the others' pushes until they are done
                try:
                    server.join()
                    log.close()  # while the server's connections are open: theirs count
                finally:
                    server.close()
            log.close()
        resumed = latest[0] if latest else 0
        return self._score_snapshots(group, shard, replica, server, log, config, resumed)

    def _score_snapshots(self, group, shard, replica, server, log, config, resumed) -> dict:
        """Score the server's snapshots together: rank 0 has them, every rank held-out rows."""
        count = torch.tensor([len(server.snapshots) if server else 0], dtype=torch.int64)
        group.broadcast(count)
        shape = (int(count), replica.flat.numel() + 2)
        snaps = torch.empty(shape, dtype=torch.float64)
        if server:
            for i, (v, seconds, p) in enumerate(server.snapshots):
                snaps[i, 0], snaps[i, 1], snaps[i, 2:] = v, seconds, p
        group.broadcast(snaps)
        scores = []
        for row in snaps:
            replica.set(row[2:].to(replica.flat.dtype))
            scores.extend(shard.held_correct(replica))
        scores = group.sum(scores)
        clock = Clock(config)
        for i, row in enumerate(snaps):
            global_step = max(int(row[0]) // group.world, 1) - 1
            clock.evaluated(global_step, scores[2 * i] / scores[2 * i + 1], float(row[1]))
        out = outcome(clock, log, config.max_steps, float(snaps[-1, 1]), resumed)
        if server:
            out["staleness"] = np.array(server.staleness)
        return out

    def step_bytes(self, config: SGDConfig, size: int, workers: int) -> int:
        # Each worker pushes a gradient and pulls the parameters (2 size, sent and received),
        # and the server, a thread of rank 0, receives and sends the same: 2 size per worker.
        return 4 * workers * size

    def execution(self, config: SGDConfig) -> str:
        return "parameter server"  # the workers push to and pull from a server actor

    def copies(self, config: SGDConfig) -> int:
        # Rank 0 also holds the server's replica, and its snapshots for scoring.
        return 2 * super().copies(config) + config.max_steps // config.eval_every + 1

    def explain(self, rows: int, features: int, workers: int, config: SGDConfig) -> list[Step]:
        P, B, p = count_parameters(features, 2, config), config.batch_size, workers
        return [
            Step(
                kind="map",
                function="model.Replica.grad_sum",
                where=f"each of {p} workers, no barrier",
                does=f"gradient of a local batch of ~{B // p} rows",
                flops=6 * B * P / p,
                sends=8 * P,
            ),
            Step(
                kind="update",
                function="parameter_server._Server._serve",
                where="server thread on rank 0",
                does="apply each gradient as it arrives, send the parameters back",
                flops=4 * P * p,
                sends=8 * P,
                pattern="server",
            ),
        ]


STRATEGY = ParameterServer()


class _Server:
    """The parameter server: a thread per connected replica, one optimiser behind a lock.

    Every ``eval_every`` global steps' worth of updates (``eval_every x p``) it snapshots the
    parameters with the training time, for the held-out scores computed after training; every
    ``checkpoints.every`` global steps' worth it keeps a checkpoint of its state (parameters,
    optimiser, version, snapshots, staleness, and the pushes each replica has made), which a
    restarted gang goes on from (``state``).
    """

    def __init__(self, replica: Replica, job: GangBrief, group: Group, state: dict | None) -> None:
        config, world = job.config, group.world
        self.replica, self.world, self.timeout = replica, world, config.timeout
        dtype = str(replica.flat.dtype).split(".")[-1]
        self.state = Replica(replica.model[0].in_features, len(job.classes), config, dtype)
        self.state.set(replica.flat)
        self.every = config.eval_every * world
        self.version, self.lock = 0, threading.Lock()
        self.staleness: list[int] = []
        self.snapshots: list[tuple[int, float, torch.Tensor]] = []
        self.pushes = [0] * world
        self.job, self.elapsed = job, 0.0
        if state is not None:
            self.state.optimizer.load_state_dict(load(state["optimizers"][0]))
            self.version, self.pushes = state["version"], list(state["pushes"])
            self.staleness, self.elapsed = list(state["staleness"]), state["elapsed"]
            self.snapshots = [tuple(s) for s in state["snapshots"]]
        self.listener = socket.create_server((group.address, 0), backlog=world)
        self.listener.settimeout(config.timeout)
        host, port = self.listener.getsockname()[:2]
        self.address = f"{host}:{port}"
        self.t0 = time.perf_counter() - self.elapsed  # a restart goes on with the time
        self.errors: list[BaseException] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.handlers: list[threading.Thread] = []
        self.connections: list[socket.socket] = []
        self.acceptor.start()

    def _accept(self) -> None:
        try:
            for _ in range(self.world):
                conn, _ = self.listener.accept()
                handler = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                handler.start()
                self.handlers.append(handler)
        except BaseException as e:
            self.errors.append(e)
        finally:
            self.listener.close()

    def _serve(self, conn: socket.socket) -> None:
        grad = np.empty(self.state.flat.numel(), dtype=self.state.flat.numpy().dtype)
        out = np.empty_like(grad)
        header = bytearray(_HEADER.size)
        self.connections.append(conn)  # closed by close(), once their bytes are counted
        try:
            conn.settimeout(self.timeout)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            (rank,) = _HEADER.unpack(recv_into(conn, header))
            while True:
                (seen,) = _HEADER.unpack(recv_into(conn, header))
                if seen < 0:
                    return
                recv_into(conn, grad)
                with self.lock:
                    self.staleness.append(self.version - seen)
                    self.state.grad.copy_(torch.from_numpy(grad))
                    self.state.step(1.0)
                    self.version += 1
                    self.pushes[rank] += 1
                    version = self.version
                    out[:] = self.state.flat.numpy()
                    if version % self.every == 0:
                        self._snapshot()
                    self._checkpoint()
                conn.sendall(_HEADER.pack(version))
                conn.sendall(memoryview(out).cast("B"))
        except BaseException as e:
            self.errors.append(e)

    def _checkpoint(self) -> None:
        """Keep the server's state every ``checkpoints.every`` global steps (under the lock)."""
        checkpoints, steps = self.job.checkpoints, self.version / self.world
        if not checkpoints or self.version % (checkpoints.every * self.world):
            return
        if max(self.pushes) >= self.job.config.max_steps:
            return  # a replica has no steps left: a gang started from here would time none
        state = {
            "params": self.state.flat.clone(),
            "optimizers": [dump(self.state.optimizer.state_dict())],
            "version": self.version,
            "pushes": list(self.pushes),
            "staleness": list(self.staleness),
            "snapshots": list(self.snapshots),
            "elapsed": time.perf_counter() - self.t0,
        }
        checkpoints.save(int(steps), dump(state))

    def _snapshot(self) -> None:
        seconds = time.perf_counter() - self.t0
        self.snapshots.append((self.version, seconds, self.state.flat.clone()))

    def close(self) -> None:
        """Close the replicas' connections."""
        for conn in self.connections:
            conn.close()

    def join(self) -> None:
        """Wait for every replica to finish; the final parameters go to rank 0's replica."""
        # No timeout here: every socket has one, so a silent peer fails its handler instead.
        self.acceptor.join()
        for h in self.handlers:
            h.join()
        if self.errors:
            raise self.errors[0]
        with self.lock:
            if not self.snapshots or self.snapshots[-1][0] != self.version:
                self._snapshot()
            self.replica.set(self.state.flat)
