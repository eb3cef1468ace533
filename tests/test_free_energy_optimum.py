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
from diffprior.method.schedules import Constant, Exponential, Piecewise
from diffprior.method.terms import MaskedGaussian
from diffprior.method.clipping import ClipPolicy


class _Cfg:  # the attributes MaskedGaussian reads from its config
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
    term = MaskedGaussian(_Cfg(), None, target, mask)
    return prior, term


def closed_form(prior, term, t, weight, prior_weight, gradient):
    ab = float(prior.noise.alphas_cumprod[t])
    D = prior.mean.numel()
    k = (1 - ab) ** 0.5 / (ab * prior.var + 1 - ab)
    a = 2 * prior_weight * (k**2 if gradient == "full" else k) * ab / D
    b = weight * term.mask / term.noise**2
    return (a * prior.mean + b * term.target) / (a + b)


@pytest.mark.parametrize("gradient", ["full", "sds"])
@pytest.mark.parametrize("case", ["plain", "relative clip", "prior weight"])
def test_optimizer_lands_on_closed_form_optimum(gradient, case):
    prior, term = _problem()
    t = 100
    prior_weight = 3.0 if case == "prior weight" else 1.0
    # choose λ so that prior and term pull with comparable strength
    ab = float(prior.noise.alphas_cumprod[t])
    k = (1 - ab) ** 0.5 / (ab * 0.2 + 1 - ab)
    weight = 2 * (k**2 if gradient == "full" else k) * ab / 16 * term.noise**2
    expected = closed_form(prior, term, t, weight, prior_weight, gradient)
    if case == "prior weight":  # w = 3 moves the optimum measurably towards the prior mean
        assert (expected - closed_form(prior, term, t, weight, 1.0, gradient)).abs().max() > 0.05
    # the relative clip holds the term to 0.02 of the prior's gradient norm for the first
    # third of the run (it bites), then lets go (ratio 100): the optimum is the same
    relative = ClipPolicy(mode="relative", value=Piecewise(points=[(0.0, 0.02), (0.3, 0.02), (0.31, 100.0)]))
    policy = relative if case == "relative clip" else ClipPolicy()
    options = Options(
        optimizer={"steps": 2000, "lr": Exponential(start=0.05, end=1e-5)},
        timesteps=Constant(value=t),
        prior_weight=prior_weight,
        gradient=gradient,
        noise_samples=16,  # 64 draws land no closer (max error 0.012 vs 0.013) at 4x the time
        init={"type": "zeros"},
    )
    variable = Pixels(prior, clip_terms=False)
    result = optimize(prior, variable, [WeightedTerm("match", term, weight, policy)], [0, 1], options)
    err = (result.x - expected).abs()
    # tolerance 0.015; the full and sds optima differ by ~0.14 here, so mixing them up fails
    assert err.max() < 0.015, f"max error {err.max():.4f}"
    # the prior and the target really compete: the optimum is strictly between them
    observed = term.mask.bool().expand_as(result.x)
    assert ((result.x[observed] - 0.8).abs() > 0.1).all()
    if case == "relative clip":
        # while it bit (s < 0.3) the prior alone moved x, to near its mean μ; unclipped, x is at
        # the optimum long before step 500: its match loss is nearer to that at μ than at η*
        def match_loss(v):
            return weight * (term.mask * (v - term.target) ** 2).sum() / (2 * term.noise**2)

        halfway = (match_loss(prior.mean) + match_loss(expected)) / 2
        assert match_loss(prior.mean) > 2 * match_loss(expected)
        assert (result.losses["match"][500] > halfway).all()
