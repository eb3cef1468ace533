"""Variables: free parameters mapped to x in the prior's space."""

from __future__ import annotations

from typing import Sequence

import torch

from diffprior.method.rng import per_sample_randn


class Variable:
    """Maps parameters (optimised) to x (what the prior and the terms see).

    ``param_shape``: shape of one sample's parameters. ``init`` draws the default start
    from the per-sample generators. ``to_x(params, progress)`` may depend on progress
    (annealed temperatures). ``term_view(x)`` is what the constraint terms receive.
    """

    def __init__(self, prior):
        self.prior = prior
        self.param_shape: tuple[int, ...] = prior.shape

    def init(self, gens: Sequence[torch.Generator], device) -> torch.Tensor:
        return per_sample_randn(gens, self.param_shape, torch.empty(0, device=device))

    def to_x(self, params: torch.Tensor, progress: float) -> torch.Tensor:
        raise NotImplementedError

    def params_from_x(self, x: torch.Tensor) -> torch.Tensor:
        """Parameters whose ``to_x`` is (close to) ``x``: what ``init.type = "prior"`` starts
        from. Variables that cannot invert their map leave it unimplemented."""
        raise NotImplementedError(f"{type(self).__name__} does not map an x back to its parameters")

    def term_view(self, x: torch.Tensor) -> torch.Tensor:
        return x


def maps_x_back(variable) -> bool:
    """Whether ``variable`` defines ``params_from_x`` (``init.type = "prior"`` needs it); plugin
    variables need not subclass :class:`Variable`."""
    method = getattr(type(variable), "params_from_x", None)
    return method is not None and method is not Variable.params_from_x


class Pixels(Variable):
    """x = η, started from N(0, I); terms see clip(η) to the data range when ``clip_terms``."""

    def __init__(self, prior, clip_terms: bool = True):
        super().__init__(prior)
        self.clip_terms = clip_terms

    def to_x(self, params, progress):
        return params

    def params_from_x(self, x):
        return x

    def term_view(self, x):
        return x.clamp(*self.prior.data_range) if self.clip_terms else x


class BoundedPixels(Variable):
    """x = lo + (hi - lo)·sigmoid(η): always inside the data range."""

    def to_x(self, params, progress):
        lo, hi = self.prior.data_range
        return lo + (hi - lo) * torch.sigmoid(params)

    def params_from_x(self, x):
        lo, hi = self.prior.data_range
        # a prior sample may sit on the range's edge: keep the logit finite (|η| ≤ 9.2)
        return torch.logit(((x - lo) / (hi - lo)).clamp(1e-4, 1 - 1e-4))


class SimplexLabelMap(Variable):
    """Per-class maps m → class probabilities P(0.5 < N(m, σ) < 1.5), normalised over classes.

    The prior sees 2p - 1 (one-hot label maps in [-1, 1]); terms see the probabilities p.
    σ is annealed from ``sigma_start`` to ``sigma_end`` (geometrically) over the run.
    The prior's shape is (K, H, W) with K classes.
    """

    def __init__(self, prior, sigma_start: float = 0.2, sigma_end: float = 0.02):
        super().__init__(prior)
        self.sigma_start, self.sigma_end = sigma_start, sigma_end

    def init(self, gens, device):
        return 0.5 + 0.1 * per_sample_randn(gens, self.param_shape, torch.empty(0, device=device))

    def sigma(self, progress: float) -> float:
        return self.sigma_start * (self.sigma_end / self.sigma_start) ** progress

    def probabilities(self, params, progress):
        normal = torch.distributions.Normal(params, self.sigma(progress))
        p = normal.cdf(torch.full_like(params, 1.5)) - normal.cdf(torch.full_like(params, 0.5))
        return p / p.sum(dim=1, keepdim=True).clamp_min(1e-8)

    def to_x(self, params, progress):
        self._last_p = self.probabilities(params, progress)
        return 2 * self._last_p - 1

    def term_view(self, x):
        return (x + 1) / 2
