"""The free-energy optimum with the analytic Gaussian prior is known in closed form.

Prior N(μ, diag σ²), fixed timestep t (ᾱ = ᾱ_t), prior weight w, D = number of dimensions.
ε_θ(x_t) = k (x_t − √ᾱ μ) with k = √(1−ᾱ) / (ᾱσ² + 1 − ᾱ), so per dimension

  full:  ∇_η E‖ε − ε_θ‖²/D = 2 w k² ᾱ (η − μ) / D          → a = 2 w k² ᾱ / D
  sds:   (2/D) √ᾱ E[ε_θ − ε] = 2 w k ᾱ (η − μ) / D          → a = 2 w k ᾱ / D

and the masked quadratic term −λ log c = λ M (η − y)² / (2 s²) has gradient b (η − y) with
b = λ M / s². The stationary point is the weighted mean η* = (a μ + b y) / (a + b).
"""

import pytest
import torch

from diffprior import GaussianPrior, NoiseSchedule, Options, Pixels, WeightedTerm, optimize
from diffprior.schedules import Constant, Exponential
from diffprior.terms import MaskedQuadratic
from diffprior.config import ClipPolicy


class _Cfg:  # the attributes MaskedQuadratic reads from its config
    noise = 0.5


def _problem():
    shape = (1, 4, 4)
    g = torch.Generator().manual_seed(0)
    mean = torch.rand(shape, generator=g) - 0.5
    var = 0.05 + 0.3 * torch.rand(shape, generator=g)
    target = torch.full(shape, 0.8)
    mask = torch.ones(shape)
    mask[..., :2] = 0.0  # left half unobserved: the optimum there is the prior mean
    prior = GaussianPrior(mean, var, NoiseSchedule.linear(1000))
    term = MaskedQuadratic(_Cfg(), None, target, mask)
    return prior, term


def closed_form(prior, term, t, weight, prior_weight, gradient):
    ab = float(prior.noise.alphas_cumprod[t])
    D = prior.mean.numel()
    k = (1 - ab) ** 0.5 / (ab * prior.var + 1 - ab)
    a = 2 * prior_weight * (k**2 if gradient == "full" else k) * ab / D
    b = weight * term.mask / term.noise**2
    return (a * prior.mean + b * term.target) / (a + b)


@pytest.mark.parametrize("gradient", ["full", "sds"])
@pytest.mark.parametrize("clip", ["none", "relative"])
def test_optimizer_lands_on_closed_form_optimum(gradient, clip):
    prior, term = _problem()
    t, prior_weight = 100, 1.0
    # choose λ so that prior and term pull with comparable strength
    ab = float(prior.noise.alphas_cumprod[t])
    k = (1 - ab) ** 0.5 / (ab * 0.2 + 1 - ab)
    weight = 2 * (k**2 if gradient == "full" else k) * ab / 16 * term.noise**2
    expected = closed_form(prior, term, t, weight, prior_weight, gradient)
    policy = ClipPolicy(mode="relative", value=Constant(value=100.0)) if clip == "relative" else ClipPolicy()
    options = Options(
        optimizer={"steps": 2000, "lr": Exponential(start=0.05, end=1e-5)},
        timesteps=Constant(value=t),
        prior_weight=prior_weight,
        gradient=gradient,
        noise_samples=64,
        init={"type": "zeros"},
    )
    result = optimize(prior, Pixels(prior, clip_terms=False), [WeightedTerm("match", term, weight, policy)], [0, 1], options)
    err = (result.x - expected).abs()
    # tolerance 0.015; the full and sds optima differ by ~0.14 here, so mixing them up fails
    assert err.max() < 0.015, f"max error {err.max():.4f}"
    # the prior and the target really compete: the optimum is strictly between them
    observed = term.mask.bool().expand_as(result.x)
    assert ((result.x[observed] - 0.8).abs() > 0.1).all()


def test_full_and_sds_optima_differ_as_derived():
    prior, term = _problem()
    full = closed_form(prior, term, 100, 0.01, 1.0, "full")
    sds = closed_form(prior, term, 100, 0.01, 1.0, "sds")
    assert not torch.allclose(full, sds)  # sds weights the prior by 1/k more
