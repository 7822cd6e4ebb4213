"""The model and its replicas: torch modules whose parameters and gradients live in flat buffers."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import torch
from torch import nn

from jobs.sgd.config import SGDConfig
from scaling.engines.worker import pin_threads

EVAL_BLOCK = 65_536
"""Held-out rows scored per forward pass: bounds the activations' memory."""


_SEEDING = threading.Lock()


def build_model(features: int, classes: int, config: SGDConfig, dtype: str) -> nn.Module:
    """Softmax regression or an MLP (ReLU), in ``dtype``, initialised from ``config.seed``."""
    sizes = (features, *config.widths, classes)
    layers: list[nn.Module] = []
    # The seed decides the weights; the caller's RNG is kept. Locked: torch's generator is the
    # process's, and the local engine's gang members are threads that build models at once.
    with _SEEDING, torch.random.fork_rng():
        torch.manual_seed(config.seed)
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b, dtype=getattr(torch, dtype)))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_optimizer(params, config: SGDConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


class Replica:
    """A model whose parameters and gradients are views of two flat buffers.

    Flat buffers make every collective one contiguous tensor (or a few bucket slices of it):
    no packing and unpacking per step, as DDP's gradient buckets and apex's flat master
    weights do. The optimiser updates the views in place.
    """

    def __init__(self, features: int, classes: int, config: SGDConfig, dtype: str) -> None:
        self.model = build_model(features, classes, config, dtype)
        params = list(self.model.parameters())
        total = sum(p.numel() for p in params)
        self.flat = torch.empty(total, dtype=params[0].dtype)
        self.grad = torch.zeros_like(self.flat)
        offset = 0
        self.slices = []
        for p in params:
            n = p.numel()
            self.flat[offset : offset + n].copy_(p.data.view(-1))
            p.data = self.flat[offset : offset + n].view_as(p)
            p.grad = self.grad[offset : offset + n].view_as(p)
            self.slices.append((offset, offset + n))
            offset += n
        self.params = params
        self.optimizer = make_optimizer(params, config)
        self.loss = nn.CrossEntropyLoss(reduction="sum")

    def set(self, flat: np.ndarray | torch.Tensor) -> None:
        """Load a flat parameter vector (a NumPy array may be read-only: Ray's zero-copy)."""
        if isinstance(flat, torch.Tensor):
            self.flat.copy_(flat)
        else:
            self.flat.numpy()[:] = flat

    def grad_sum(self, X: torch.Tensor, y: torch.Tensor) -> float:
        """Zero the gradient, then accumulate the summed loss's gradient over ``(X, y)``."""
        self.grad.zero_()
        if len(X) == 0:
            return 0.0
        loss = self.loss(self.model(X), y)
        loss.backward()
        return float(loss.detach())

    def step(self, scale: float) -> None:
        """Scale the gradient (1 / batch rows: a mean) and take one optimiser step."""
        self.grad.mul_(scale)
        self.optimizer.step()

    @torch.no_grad()
    def correct(self, X: torch.Tensor, y: torch.Tensor) -> int:
        """How many of ``(X, y)`` the model classifies right."""
        hits = 0
        for a in range(0, len(X), EVAL_BLOCK):
            hits += int(
                (self.model(X[a : a + EVAL_BLOCK]).argmax(1) == y[a : a + EVAL_BLOCK]).sum()
            )
        return hits


def pin_torch() -> None:
    pin_threads()
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # one core per worker, like the BLAS (see THREAD_ENV)
