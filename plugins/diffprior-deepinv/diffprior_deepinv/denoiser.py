"""Any diffprior prior as a deepinv Denoiser, by Tweedie's formula.

deepinv calls D(u, σ) with u = u₀ + σ·n on the [0, 1] scale. On diffprior's [−1, 1] scale
that is x' = x₀ + s·n with s = 2σ (:mod:`diffprior_deepinv.units`). A DDPM's
x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε is the same noise once divided by √ᾱ_t, with s² = (1−ᾱ_t)/ᾱ_t.
So D picks the timestep t whose s_t is nearest to s (in log s; the largest t for s beyond
the schedule, t = 0 below it), sets x_t = √ᾱ_t·x', and returns Tweedie's posterior mean

    E[x₀ | x_t] = (x_t − √(1−ᾱ_t)·ε_θ(x_t, t)) / √ᾱ_t,

mapped back to [0, 1]. It is exact where σ is one of the schedule's noise levels.
"""

from __future__ import annotations

import torch

from .units import from_unit, sigma_from_unit, to_unit


def _denoiser_base():
    from deepinv.models import Denoiser

    return Denoiser


def as_denoiser(prior, *, clip: bool = False):
    """A ``deepinv.models.Denoiser`` wrapping ``prior`` (imports deepinv). ``clip=True`` clamps
    the estimate to [0, 1]."""

    class PriorDenoiser(_denoiser_base()):
        def __init__(self):
            super().__init__()
            self.prior = prior
            self.clip = clip
            ab = prior.noise.alphas_cumprod.double()
            self.register_buffer("log_levels", (((1 - ab) / ab).sqrt()).log(), persistent=False)

        def timestep(self, sigma_unit: torch.Tensor) -> torch.Tensor:
            """The timestep whose noise level on the [−1, 1] scale is nearest 2σ (per sample)."""
            s = sigma_from_unit(sigma_unit.double()).clamp_min(1e-12).log()
            return (s.view(-1, 1) - self.log_levels.to(s.device).view(1, -1)).abs().argmin(1)

        def forward(self, x, sigma, **kwargs):
            sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1)
            sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
            t = self.timestep(sigma)
            a = self.prior.noise.alpha_bar(t, x)
            x_t = a.sqrt() * from_unit(x)
            x0 = self.prior.predict_x0(x_t, t)
            u0 = to_unit(x0)
            return u0.clamp(0, 1) if self.clip else u0

    return PriorDenoiser()
