"""Which rows each step uses: global batches (the same in every process) and local ones."""

from __future__ import annotations

import numpy as np
import torch

from jobs.sgd.model import Replica
from scaling.data import Part, held_out
from scaling.errors import DataError


def training_rows(rows: int, holdout: float, seed: int) -> np.ndarray:
    """Global indices of the training rows (the others are held out), by row, not partition."""
    return np.flatnonzero(~held_out(seed, 0, rows, holdout))


def epoch_order(train: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The training rows in the order epoch ``epoch`` visits them (the same in every process)."""
    return train[np.random.default_rng((seed, 7, epoch)).permutation(len(train))]


class GlobalBatches:
    """Global batch ``t``: rows ``[j B, (j + 1) B)`` of its epoch's order (a partial last batch
    of an epoch is dropped, as ``DataLoader(drop_last=True)`` does)."""

    def __init__(self, rows: int, holdout: float, seed: int, batch: int) -> None:
        self.train = training_rows(rows, holdout, seed)
        self.seed, self.batch = seed, batch
        self.per_epoch = len(self.train) // batch
        if self.per_epoch == 0:
            raise DataError(
                f"{len(self.train)} training rows are fewer than one batch of {batch}; "
                "lower --batch-size or --holdout"
            )
        self._epoch, self._order = -1, self.train

    def __call__(self, step: int) -> np.ndarray:
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, epoch_order(self.train, self.seed, epoch)
        return self._order[j * self.batch : (j + 1) * self.batch]


class Shard:
    """A worker's partitions as one tensor, with a map from global row to local row."""

    def __init__(self, parts: list[Part], classes: np.ndarray, holdout: float, seed: int):
        parts = sorted(parts, key=lambda p: p.start)
        X = np.concatenate([p.X for p in parts]) if len(parts) > 1 else parts[0].X
        y = np.concatenate([p.y for p in parts]) if len(parts) > 1 else parts[0].y
        self.X = torch.from_numpy(np.ascontiguousarray(X))
        self.y = torch.from_numpy(np.searchsorted(classes, y).astype(np.int64))
        self.starts = np.array([p.start for p in parts])
        self.stops = np.array([p.stop for p in parts])
        self.offsets = np.cumsum([0] + [p.stop - p.start for p in parts])[:-1]
        held = np.concatenate([held_out(seed, p.start, p.stop, holdout) for p in parts])
        self.train = np.flatnonzero(~held)
        self.held = torch.from_numpy(np.flatnonzero(held))

    def local(self, rows: np.ndarray) -> torch.Tensor:
        """Local indices of the global ``rows`` this shard holds (the others are skipped)."""
        k = np.searchsorted(self.starts, rows, side="right") - 1
        k = np.maximum(k, 0)
        mine = (rows >= self.starts[k]) & (rows < self.stops[k])
        return torch.from_numpy(rows[mine] - self.starts[k[mine]] + self.offsets[k[mine]])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[index], self.y[index]

    def held_correct(self, replica: Replica) -> tuple[int, int]:
        return replica.correct(self.X[self.held], self.y[self.held]), len(self.held)


def local_share(batch: int, world: int, rank: int) -> int:
    """Rank ``rank``'s rows of a global batch split as evenly as it goes."""
    return batch // world + (rank < batch % world)


class LocalBatches:
    """Batches of a replica's own training rows: its own permutation per epoch."""

    def __init__(self, shard: Shard, size: int, seed: int, rank: int) -> None:
        self.rows, self.size, self.seed, self.rank = shard.train, size, seed, rank
        self.per_epoch = max(len(self.rows) // size, 1)
        self._epoch, self._order = -1, self.rows

    def __call__(self, step: int) -> torch.Tensor:
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            rng = np.random.default_rng((self.seed, 11, self.rank, epoch))
            self._epoch, self._order = epoch, self.rows[rng.permutation(len(self.rows))]
        return torch.from_numpy(self._order[j * self.size : (j + 1) * self.size])
