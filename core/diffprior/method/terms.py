"""Terms: constraints log c(x, y), one score per sample."""

from __future__ import annotations

import torch

from diffprior.errors import ConfigError


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


class MaskedGaussian(Term):
    """A Gaussian observation y (noise σ) of the pixels under a mask M:

        log c = −Σ_i M_i·(x_i − y_i)² / (2σ²)

    the observation's log-likelihood up to a constant, summed over the observed pixels (so
    λ = 1 is the exact posterior, and more observed pixels pull harder). ``target`` and
    ``mask`` broadcast to the sample shape; a soft mask in [0, 1] weights pixels. The metric
    (``masked_mse`` by default) is the mean squared error over the observed pixels. The core's
    ``match`` term and diffprior-images' ``mask`` term are both this term.
    """

    metric_name = "masked_mse"

    def __init__(self, config=None, ctx=None, target: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                 *, noise: float | None = None):
        super().__init__(config, ctx)
        if target is None:
            raise ValueError("MaskedGaussian needs a target")
        self.target = target
        self.mask = torch.ones_like(target) if mask is None else mask
        self.noise = float(noise if noise is not None else config.noise)

    def log_c(self, x):
        sq = self.mask * (x - self.target) ** 2
        return -sq.flatten(1).sum(1) / (2 * self.noise**2)

    def masked_mse(self, x):
        sq = self.mask * (x - self.target) ** 2
        return sq.flatten(1).sum(1) / self.mask.expand_as(x).flatten(1).sum(1).clamp_min(1)

    def metrics(self, x):
        return {self.metric_name: self.masked_mse(x)}
