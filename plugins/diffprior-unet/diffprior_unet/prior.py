"""A trained U-Net as a :class:`diffprior.Prior`."""

from __future__ import annotations

import torch
from diffprior import Prior


class UNetPrior(Prior):
    """ε_θ(x_t, t) = ``model(x_t, t)``; shape and data range come from the checkpoint."""

    def __init__(self, model, noise, data_range=(-1.0, 1.0), metadata: dict | None = None):
        arch = model.arch
        super().__init__(noise, (arch.in_channels, arch.image_size, arch.image_size), data_range)
        self.model = model
        self.metadata = metadata or {}

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x_t, t)
