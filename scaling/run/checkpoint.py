"""Checkpoints of a run's gang: its latest state, every few rounds, in the results store.

A gang (boosted trees, SGD's gangs) holds its loop inside the workers, so a member that dies
loses every round since the gang started. With checkpoints, rank 0 writes the model every
``every`` rounds (steps) to ``STORE/checkpoints/RUN_ID/``; when the gang starts again (a
replaced worker, or ``scaling run --resume RUN_ID`` after the run itself was interrupted)
every member reads the latest one and trains only the rounds after it.

The folder holds ``run.json`` (what the run is: job, config, data and dtype, so that a resume
of another run is refused; the engine and worker count may change, as the model does not)
and one ``round-NNNNNNNN.ckpt``, written atomically before the older one is removed. Members
on other machines need the store on a shared filesystem, as Ray Train's ``storage_path``
does. A run that finishes removes its folder (its model is in its record's arrays); one that
fails keeps it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from scaling.errors import UsageError
from scaling.results import atomic_write

CHECKPOINTS = "checkpoints"
RUN = "run.json"
EVERY = 10
"""Default rounds (steps) between checkpoints: a dead member costs at most this many."""


def folder(store: str | os.PathLike, run_id: str) -> Path:
    """Where run ``run_id``'s checkpoints live in ``store``: an absolute path, as the gang's
    members that write them run in other directories."""
    return Path(store).absolute() / CHECKPOINTS / run_id


@dataclass(frozen=True)
class Checkpoints:
    """Where a gang keeps its latest state, and what run it is of (it travels to the members:
    a path, a number and a string). The folder is made by the first save, so that a run
    of a job without gangs leaves none.

    Notes
    -----
    A checkpoint costs one model serialisation and one file write on rank 0, O(trees x
    nodes) bytes, every ``every`` rounds; the rounds lost to a dead member fall from all of
    them done since the start to at most ``every - 1``.
    """

    directory: str
    every: int = EVERY
    run: str = "{}"  # JSON: what the run is (job, config, data), checked by of_run()

    def save(self, done: int, blob: bytes) -> None:
        """Keep ``blob`` as the state after round ``done``, then drop the older one."""
        path = Path(self.directory)
        if not (path / RUN).is_file():
            path.mkdir(parents=True, exist_ok=True)
            atomic_write(path / RUN, self.run.encode())
        atomic_write(path / f"round-{done:08d}.ckpt", blob)
        for old in self._files():
            if old.name != f"round-{done:08d}.ckpt":
                old.unlink(missing_ok=True)

    def latest(self) -> tuple[int, bytes] | None:
        """``(rounds done, state)`` of the newest checkpoint, or None when there is none."""
        for path in reversed(self._files()):
            try:  # another member's save may remove it between the listing and the read
                return int(path.stem.split("-")[1]), path.read_bytes()
            except FileNotFoundError:
                continue
        return None

    def _files(self) -> list[Path]:
        return sorted(Path(self.directory).glob("round-*.ckpt"))


def of_run(
    store: str | os.PathLike, run_id: str, identity: dict, every: int, resume: bool = False
) -> Checkpoints:
    """The checkpoints of run ``run_id`` (``identity``: what the run is); with ``resume``,
    those an interrupted run left, once they are known to be of this run.

    Raises
    ------
    UsageError
        On ``resume``, when ``store`` keeps no checkpoints of ``run_id``, or they are of
        another run (the first field that differs is named).
    """
    identity = json.loads(json.dumps(identity, default=str))  # as it reads back
    path = folder(store, run_id)
    checkpoints = Checkpoints(str(path), every, json.dumps(identity, sort_keys=True))
    if not resume:
        return checkpoints
    if checkpoints.latest() is None:
        kept = sorted(p.parent.name for p in path.parent.glob(f"*/{RUN}"))
        raise UsageError(
            f"no checkpoints of run {run_id!r} in {path.parent}; runs that can be resumed: "
            f"{', '.join(kept) or 'none'}"
        )
    saved = json.loads((path / RUN).read_text())
    for key in sorted(set(saved) | set(identity)):
        if saved.get(key) != identity.get(key):
            raise UsageError(
                f"run {run_id} has {key} {saved.get(key)!r}, this one {identity.get(key)!r}: "
                "resume it with the options it was started with"
            )
    return checkpoints


def note_resumed(failures: list, since: int, done: int) -> None:
    """Say, in the failures recorded from index ``since`` on, that the gang went on from
    its checkpoint after ``done`` rounds (or steps)."""
    for i in range(since, len(failures)):
        how = f"{failures[i].how}; the gang went on from its checkpoint after round {done}"
        failures[i] = dataclasses.replace(failures[i], how=how)


def finish(checkpoints: Checkpoints) -> None:
    """A run that finished needs its checkpoints no more."""
    shutil.rmtree(checkpoints.directory, ignore_errors=True)
