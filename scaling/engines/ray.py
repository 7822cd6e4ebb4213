"""Ray engine: one actor per worker holds that worker's partitions.

Native mapping: partitions live in the actors' memory (stateful actors guarantee locality,
which tasks over the object store do not); map is one actor method call per worker;
the combine tree is actor calls that take the children's ``ObjectRef`` s, so partial
results move actor to actor through the object store and only the root reaches the driver;
broadcast is ``ray.put``; a gang is one concurrent call per actor. An actor whose process
dies is not restarted (``max_restarts=0``): the engine starts a new one in its place and
re-reads its partitions there (:meth:`RayEngine._replace_lost`).
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Token authentication, always, decided here rather than by whatever files exist: Ray reads
# RAY_AUTH_MODE when it is imported, then finds the token where its own tools keep it
# (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token, where `scaling cluster start`
# puts it) and makes one there for a new local cluster. Only if Ray is not imported yet: a
# Ray that read another mode would start an embedded cluster that asks for tokens its driver
# does not send.
if "ray" not in sys.modules:
    os.environ.setdefault("RAY_AUTH_MODE", "token")

import ray
from ray import cloudpickle
from ray._private import ray_constants
from ray.exceptions import (
    GetTimeoutError,
    RayActorError,
    RayTaskError,
    WorkerCrashedError,
)

from scaling.engines.base import Cached, Dataset, Engine
from scaling.engines.defaults import WATCH
from scaling.engines.net import is_loopback
from scaling.engines.recovery import dead
from scaling.engines.worker import (
    THREAD_ENV,
    GangContext,
    LoadStat,
    PartSpec,
    TaskOut,
    combine_outs,
    load_parts,
    run_parts,
)
from scaling.errors import EngineError, GangTimeout, ScalingError, StepTimeout

_RAY_CLUSTERS = ray_constants.ENABLE_RAY_CLUSTER
"""Whether Ray gives a node the host's address (as it does where it runs clusters)."""


class _Lost(Exception):
    """A gang member's actor process is gone (a lost worker) though Ray has not said so yet."""


@ray.remote(num_cpus=1, max_restarts=0)
class _Worker:
    """A worker process and the partitions cached in it, by dataset uid."""

    def __init__(self) -> None:
        self.data: dict[str, dict] = {}

    def ready(self) -> int:
        return os.getpid()

    def load(self, uid: str, specs: list[PartSpec], dtype: str) -> list[LoadStat]:
        self.data[uid], stats = load_parts(specs, dtype)
        return stats

    def run(self, call: bytes, *refs: Any) -> bytes:
        """A map task: ``call`` is :func:`_pack`'s, ``refs`` the broadcast values it uses;
        returns the pickled :class:`TaskOut` (see :func:`_pack`)."""
        return _dumps(self._run(pickle.loads(call), refs))

    def run_tree(self, call: bytes, children: list, *refs: Any) -> bytes:
        """:meth:`run`, with the results of ``children`` (other workers' map tasks: a
        map-reduce's tree) combined into its own. A method of its own, not an empty
        ``children`` on every map: each argument of an actor call costs the call its own
        serialisation (an empty map 1.17 ms with it, 1.07 without, Ray's own 0.79-0.86)."""
        unpacked = pickle.loads(call)
        out = self._run(unpacked, refs)
        for child in ray.get(children):  # in a list, not resolved before this task ran
            out = combine_outs(unpacked[3], out, pickle.loads(child))
        return _dumps(out)

    def _run(self, unpacked: tuple, refs: tuple) -> TaskOut:
        uid, fn, args, combine = unpacked
        args = tuple(refs[a.index] if isinstance(a, _Ref) else a for a in args)
        return run_parts(self.data[uid], fn, args, combine)

    def gang(self, uid: str, fn: Callable, ctx: GangContext, args: tuple) -> Any:
        parts = self.data[uid]
        return fn(ctx, [parts[i] for i in sorted(parts)], *_resolve(args))

    def release(self, uid: str) -> None:
        self.data.pop(uid, None)


@dataclass(frozen=True)
class _Ref:
    index: int  # of a broadcast value among a call's top-level ObjectRefs


def _pack(*call: Any) -> tuple[bytes, list]:
    """One engine call's function and arguments pickled once, for every actor.

    Ray serialises each argument of each actor call separately: four arguments cost an empty
    call 3.1 ms instead of 2.0 ms for one bytes object (median of 60, 2 actors). Broadcast
    values (ObjectRefs) stay top-level arguments, which Ray resolves on the worker, zero-copy.
    Results come back pickled too: a ``TaskOut`` returned as is cost 0.2-0.5 ms more per
    call than its pickle.
    """
    uid, fn, args, combine = call
    refs = [a for a in args if isinstance(a, ray.ObjectRef)]
    at = iter(range(len(refs)))
    args = tuple(_Ref(next(at)) if isinstance(a, ray.ObjectRef) else a for a in args)
    return cloudpickle.dumps((uid, fn, args, combine)), refs


def _children(i: int, p: int) -> list[int]:
    """Worker ``i``'s children in a binomial tree over ``p`` workers: i + 1, i + 2, i + 4, ...
    while below i's lowest set bit (all of them for 0) and below p. log2(p) levels."""
    out, step = [], 1
    while i + step < p and not i & step:
        out.append(i + step)
        step *= 2
    return out


def _dumps(out: TaskOut) -> bytes:
    return pickle.dumps(out, protocol=5)


def _resolve(args: tuple) -> tuple:
    # Broadcast handles arrive as ObjectRefs nested in the args tuple; Ray resolves only
    # top-level arguments, so fetch them here (zero-copy for arrays in the object store).
    return tuple(ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in args)


def _keep_errors_quiet(worker: Any, threads_stopped: Any) -> None:
    """Ray's error listener, in place: it listens to nothing (see :meth:`RayEngine._start`)."""


class RayEngine(Engine):
    """Ray engine: ``address=None`` starts a local Ray instance with ``workers`` CPUs."""

    name = "ray"
    framework = "ray"
    address_schemes = ("ray",)

    def _start(self) -> None:
        if ray.is_initialized():
            raise EngineError(
                "Ray is already initialised in this process; close the other "
                "ray engine first (one Ray instance per process)"
            )
        runtime_env = {"env_vars": THREAD_ENV}
        # The driver prints what the cluster publishes ("A worker died or was killed...") to
        # standard output from a thread of its own, whatever the log level; the engine says
        # it itself, in one line: the error of the call, or the record's recovery.
        ray._private.worker.listen_error_messages = _keep_errors_quiet
        # A call fails on its first error; the others it leaves unread (a gang member that
        # failed on its dead peer's broken connection) Ray logs as "Unhandled error" with a
        # 30-line traceback when their references are dropped.
        os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
        if self.address is None:
            # A node whose address is loopback binds its servers (GCS, raylet, workers,
            # agents) to 127.0.0.1; Ray gives its node loopback where it runs no clusters
            # (macOS, Windows) and the host's address elsewhere, which binds them to every
            # interface, and ray.init(_node_ip_address="127.0.0.1") is turned back into it.
            ray_constants.ENABLE_RAY_CLUSTER = False
            ray.init(
                # a cluster of its own, whatever else runs here: without "local", Ray joins
                # the cluster that /tmp/ray/ray_current_cluster names, stale or not, and then
                # refuses num_cpus
                address="local",
                num_cpus=self.workers,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                runtime_env=runtime_env,
            )
        else:
            # a cluster on loopback (`scaling cluster start ray`) is reached on loopback, or
            # Ray turns 127.0.0.1 into the host's address, where nothing listens, and waits
            host = self.address.removeprefix("ray://").rsplit(":", 1)[0]
            ray_constants.ENABLE_RAY_CLUSTER = _RAY_CLUSTERS and not is_loopback(host)
            ray.init(
                address=self.address,
                log_to_driver=False,
                logging_level="ERROR",
                runtime_env=runtime_env,
            )
            cpus = int(ray.cluster_resources().get("CPU", 0))
            if cpus < self.workers:  # actors for more would wait for CPUs that never come
                ray.shutdown()
                raise EngineError(
                    f"the Ray cluster at {self.address} has {cpus} CPUs, {self.workers} "
                    "single-CPU workers asked; start more workers or ask for fewer"
                )
        self._owns_ray = True
        self._actors = [_Worker.remote() for _ in range(self.workers)]
        try:
            # watched like every call: a cluster stopped while its workers start would
            # otherwise leave this wait to Ray's GCS client, which ends the process after 60 s
            pids = self._get([a.ready.remote() for a in self._actors], "start", within=120)
        except ScalingError as e:
            self._stop()
            if not isinstance(e, StepTimeout):
                raise
            raise EngineError(
                f"the Ray cluster could not start {self.workers} single-CPU "
                "workers within 120 s; ask for fewer --workers or add nodes"
            ) from e
        # an embedded cluster's actors are processes here, which a gang looks at (_gang)
        self._pids = dict(enumerate(pids)) if self.address is None else {}

    def _get(self, refs: Any, op: str, within: float | None = None) -> Any:
        """``ray.get(refs)`` within ``within`` seconds (the step deadline unless given), the
        cluster checked every :data:`WATCH` s while it waits."""
        deadline = time.monotonic() + (self.step_timeout if within is None else within)
        while True:
            try:
                return ray.get(refs, timeout=max(min(WATCH, deadline - time.monotonic()), 0))
            except GetTimeoutError:
                if time.monotonic() >= deadline:
                    raise self.timed_out(op) from None
                if self.gone():
                    raise self.lost(op, "its GCS stopped answering") from None

    def _load(self, uid: str, specs: list[list[PartSpec]], dtype: str) -> Cached:
        loads = [a.load.remote(uid, s, dtype) for a, s in zip(self._actors, specs, strict=True)]
        return uid, [s for worker in self._get(loads, "load") for s in worker]

    def _map(self, ds: Dataset, fn: Callable, args: tuple) -> list[TaskOut]:
        call, refs = _pack(ds.uid, fn, args, None)
        outs = self._get([a.run.remote(call, *refs) for a in self._actors], "map")
        return [pickle.loads(b) for b in outs]

    def _map_reduce(self, ds: Dataset, fn: Callable, combine: Callable, args: tuple) -> TaskOut:
        """A binomial tree in the map tasks themselves, its top level on the driver: worker i,
        once its map is done, fetches and combines the results of workers i + 1, i + 2,
        i + 4, ... below it in the tree (those whose index differs from i in one bit above
        i's lowest set one), except that worker 0 leaves its largest subtree, rooted at h (the
        largest power of two below p), to the driver, which combines the two roots' results,
        as Spark's ``treeReduce`` ends on the driver. For two workers: two actor calls and no
        fetch between workers, an empty step 0.99-1.05x Ray's own three-call map-reduce
        (taking turns with it, two runs), where worker 0 fetching worker 1's result made it
        1.25x (a borrowed reference costs Ray's ownership protocol its round trips)."""
        call, refs = _pack(ds.uid, fn, args, combine)
        p = len(self._actors)
        top = 1 << ((p - 1).bit_length() - 1) if p > 1 else 0  # the driver's second child
        outs: dict[int, ray.ObjectRef] = {}
        for i in reversed(range(p)):  # children (higher indices) before their parents
            children = [outs[j] for j in _children(i, p) if (i, j) != (0, top)]
            if children:
                outs[i] = self._actors[i].run_tree.remote(call, children, *refs)
            else:
                outs[i] = self._actors[i].run.remote(call, *refs)
        roots = [0, top] if top else [0]
        first, *rest = (pickle.loads(b) for b in self._get([outs[r] for r in roots], "map_reduce"))
        for out in rest:
            first = combine_outs(combine, first, out)
        return first

    def _broadcast(self, value: Any) -> Any:
        return ray.put(value)

    def _gang(
        self, ds: Dataset, fn: Callable, ctxs: list[GangContext], args: tuple, timeout: float
    ) -> list:
        refs = [a.gang.remote(ds.uid, fn, c, args) for a, c in zip(self._actors, ctxs, strict=True)]
        # Wait member by member, so that the first to fail (or die) fails the gang at once:
        # ray.get(refs) would first wait for the survivors, who wait in vain for their peer.
        deadline = time.monotonic() + timeout
        pending = refs
        while pending:
            left = deadline - time.monotonic()
            done, pending = ray.wait(pending, timeout=max(min(WATCH, left), 0))
            if not done and left > WATCH:
                if self.gone():
                    raise self.lost("gang", "its GCS stopped answering")
                continue
            if not done:
                for r in pending:
                    ray.cancel(r, force=False)
                raise GangTimeout
            try:
                ray.get(done)  # raises that member's error
            except RayTaskError as e:
                # a member that failed on its dead peer's broken connection, often before Ray
                # knows the peer died: the death is the cause
                if lost := dead(self._pids):
                    raise _Lost(f"ray worker {lost[0]}'s process is gone") from e
                raise
        return ray.get(refs)

    def _release(self, ds: Dataset) -> None:
        self._get([a.release.remote(ds.uid) for a in self._actors], "release")

    def _replace_lost(self) -> list[int]:
        """New actors for the dead ones (a ping of a dead actor fails at once; a live one
        answers once its current task is done)."""
        lost = []
        for w, actor in enumerate(self._actors):
            try:
                self._get(actor.ready.remote(), "recover")
            except RayActorError:
                lost.append(w)
        for w in lost:
            self._actors[w] = _Worker.remote()
        pids = self._get([self._actors[w].ready.remote() for w in lost], "recover")
        if self._pids:
            self._pids.update(zip(lost, pids, strict=True))
        return lost

    def _reload(self, uid: str, w: int, specs: list[PartSpec], dtype: str) -> list[LoadStat]:
        return self._get(self._actors[w].load.remote(uid, specs, dtype), "recover")

    def _is_worker_lost(self, error: BaseException) -> bool:
        return isinstance(error, RayActorError | WorkerCrashedError | _Lost)

    def _error_summary(self, error: BaseException) -> str:
        # A RayTaskError's text opens with the actor's repr; the task's own exception is .cause.
        cause = getattr(error, "cause", None) if isinstance(error, RayTaskError) else None
        return super()._error_summary(cause if cause is not None else error)

    def _stop(self) -> None:
        # a cluster that went away took its actors with it; killing them would wait on its GCS
        for a in [] if self.gone() else getattr(self, "_actors", []):
            ray.kill(a)
        self._actors = []
        ray.shutdown()
