"""The ``physics`` term: the log-likelihood of a measurement through a deepinv operator."""

from __future__ import annotations

import torch

from diffprior import ConfigError
from diffprior import Term, check_image_shape

from .physics import build_physics, load_array, output_shape
from .units import to_unit


def measurement_rows(target: torch.Tensor, expected: tuple, indices: list[int], path) -> torch.Tensor:
    """The measurement each sample sees, [B, *expected]: the one measurement for every sample,
    or row ``indices[i]`` of a stack with a leading batch dimension."""
    found = tuple(target.shape)
    if found == expected:
        return target.unsqueeze(0).expand(len(indices), *expected).clone()
    if found[1:] == expected:
        if max(indices) >= found[0]:
            raise ConfigError(f"terms: physics target {path} holds {found[0]} measurements; the run's samples need "
                              f"rows up to {max(indices)} (lower --batch or give more measurements)")
        return target[list(indices)].clone()
    raise ConfigError(f"terms: physics target {path} has shape {list(found)}; the operator's output has shape "
                      f"{list(expected)} (or [N, {', '.join(map(str, expected))}] for one measurement per sample)")


class PhysicsTerm(Term):
    """log c = −fidelity(A((x + 1)/2), y), per image (``reduce = "sum"``) or divided by the
    number of pixels of x (``"mean"``); see :class:`~diffprior_deepinv.plugin.PhysicsConfig`.

    Sample i of this build holds ``self.measurement[i]``: with one measurement per sample,
    ``log_c`` needs a batch of exactly the build's samples, in order, as the optimizer passes
    it; a single shared measurement scores any batch."""

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        import deepinv as dinv

        shape = check_image_shape(ctx, "physics")
        self.physics = build_physics(config, shape, ctx.device)
        expected = output_shape(self.physics, shape, ctx.device)
        target = load_array(config.target, config.key, "terms: physics target")
        self.measurement = measurement_rows(target, expected, ctx.indices, config.target).to(ctx.device)
        self.shared = tuple(target.shape) == expected  # one measurement for every sample: any batch may score it
        self.sigma = float(config.sigma)
        if config.fidelity == "l2":
            self.fidelity = dinv.optim.L2(sigma=self.sigma)
        elif config.fidelity == "l1":
            self.fidelity = dinv.optim.L1()
        else:
            self.fidelity = dinv.optim.PoissonLikelihood(gain=config.gain)
        self.scale = 1.0 / self.sigma if config.fidelity == "l1" else 1.0
        self.pixels = 1.0 / float(torch.Size(shape).numel()) if config.reduce == "mean" else 1.0

    def _rows(self, x):
        if self.shared:
            return self.measurement[:1].expand(x.shape[0], *self.measurement.shape[1:])
        if x.shape[0] != self.measurement.shape[0]:
            raise ValueError(f"the physics term holds {self.measurement.shape[0]} measurements (one per sample); got a batch of {x.shape[0]}")
        return self.measurement

    def log_c(self, x):
        y = self._rows(x)
        return -self.pixels * self.scale * self.fidelity.fn(to_unit(x), y, self.physics)

    def residual(self, x):
        """Root-mean-square of A(u) − y per sample, on deepinv's [0, 1] scale."""
        y = self._rows(x)
        return (self.physics.A(to_unit(x)) - y).flatten(1).pow(2).mean(1).sqrt()

    def metrics(self, x):
        return {"residual": self.residual(x)}
