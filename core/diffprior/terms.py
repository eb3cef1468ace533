"""Terms: constraints log c(x, y), one score per sample."""

from __future__ import annotations

import torch

from .errors import ConfigError


class Term:
    """A constraint. :meth:`log_c` returns a [B] tensor: the per-sample score to maximise.

    Per-sample independence is part of the contract: sample i's score depends only on x[i].
    ``metrics(x)`` may add human-readable per-sample figures to ``metrics.json``.
    ``config`` and ``ctx`` are what a config's ``build`` passes; a term written in Python
    needs neither (``Bright()``).
    """

    def __init__(self, config=None, ctx=None):
        self.config = config
        self.ctx = ctx

    def log_c(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}


def check_image_shape(shape_or_prior, term: str) -> tuple[int, int, int]:
    """The [C, H, W] sample shape of an image prior; a ConfigError naming ``term`` otherwise.

    Accepts a shape, a prior (``.shape``) or a BuildContext (``.prior.shape``)."""
    value = getattr(shape_or_prior, "prior", shape_or_prior)
    shape = tuple(getattr(value, "shape", value))
    if len(shape) != 3:
        raise ConfigError(f"terms: the {term} term needs an image prior with samples of shape (C, H, W); this prior's is {list(shape)}")
    return shape


class MaskedQuadratic(Term):
    """log c = -Σ M ⊙ (x - y)² / (2 noise²): a Gaussian observation of the masked pixels."""

    def __init__(self, config, ctx, target: torch.Tensor, mask: torch.Tensor):
        super().__init__(config, ctx)
        self.target = target
        self.mask = mask
        self.noise = config.noise

    def log_c(self, x):
        sq = self.mask * (x - self.target) ** 2
        return -sq.flatten(1).sum(1) / (2 * self.noise**2)

    def metrics(self, x):
        sq = self.mask * (x - self.target) ** 2
        return {"masked_mse": sq.flatten(1).sum(1) / self.mask.expand_as(x).flatten(1).sum(1).clamp_min(1)}
