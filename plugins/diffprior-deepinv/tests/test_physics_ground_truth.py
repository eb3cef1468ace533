"""Ground truth: Gaussian prior + linear deepinv operator → a Gaussian problem with a closed-form optimum.

With u = (x + 1)/2 and A linear (matrix A on the [0, 1] scale), −log c = ‖A u − y‖²/(2σ²)
(times 1/D with reduce = "mean"). Adding a quadratic prior energy ½ Σ a_i (x_i − μ_i)², the
total is quadratic in x with Hessian H = diag(a) + r AᵀA/(4σ²) (r = 1 or 1/D) and gradient at
x = 0 g = −aμ + r Aᵀ(A·½ − y)/(2σ²), so the optimum is x* = −H⁻¹g:
- a = 1/var: the exact posterior mode (MAP) of N(μ, var) and the measurement;
- a = 2 w k² ᾱ / D: the free energy's stationary point at a fixed t (tests/test_free_energy_optimum.py).
"""

import pytest
import torch

from diffprior import BuildContext, GaussianPrior, NoiseSchedule, Options, Pixels, WeightedTerm, optimize
from diffprior.method.schedules import Constant, Exponential
from diffprior_deepinv.plugin import PhysicsConfig

SHAPE = (1, 4, 4)
D = 16
SIGMA = 0.1


def _prior():
    g = torch.Generator().manual_seed(0)
    mean = 0.6 * (torch.rand(SHAPE, generator=g) - 0.5)
    var = 0.05 + 0.3 * torch.rand(SHAPE, generator=g)
    return GaussianPrior(mean, var, NoiseSchedule.linear(1000))


def _term(tmp_path, operator, reduce, **params):
    from safetensors.torch import save_file

    from diffprior_deepinv.operators import OperatorSpec

    prior = _prior()
    op = OperatorSpec(operator=operator, sigma=SIGMA, **params).build_physics(SHAPE)
    truth = torch.linspace(0.1, 0.9, D).reshape(1, *SHAPE)
    clean = op.A(truth)
    y = clean + 0.02 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    save_file({"measurement": y[0].contiguous()}, str(tmp_path / "y.safetensors"))
    config = PhysicsConfig(type="physics", operator=operator, target=tmp_path / "y.safetensors", sigma=SIGMA,
                           reduce=reduce, **params)
    term = config.build(BuildContext(prior=prior, batch=1))
    return prior, term


def _matrix(physics):
    basis = torch.eye(D).reshape(D, *SHAPE)
    with torch.no_grad():
        return physics.A(basis).reshape(D, -1).T  # [m, D]


def closed_form(term, a, mu, ratio):
    A = _matrix(term.physics)
    y = term.measurement[0].reshape(-1)
    H = torch.diag(a.reshape(-1)) + ratio * A.T @ A / (4 * SIGMA**2)
    g = -(a * mu).reshape(-1) + ratio * A.T @ (A @ torch.full((D,), 0.5) - y) / (2 * SIGMA**2)
    return torch.linalg.solve(H.double(), -g.double()).float().reshape(SHAPE)


CASES = [("inpainting", {"ratio": 0.5, "seed": 3}), ("downsampling", {"factor": 2, "filter": "bicubic"})]


@pytest.mark.parametrize("operator, params", CASES, ids=[c[0] for c in CASES])
def test_gradient_descent_on_log_density_plus_log_c_reaches_the_posterior_mode(tmp_path, operator, params):
    prior, term = _term(tmp_path, operator, "sum", **params)
    expected = closed_form(term, 1 / prior.var, prior.mean, 1.0)
    x = torch.zeros(1, *SHAPE, requires_grad=True)
    opt = torch.optim.LBFGS([x], max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        energy = 0.5 * ((x - prior.mean) ** 2 / prior.var).sum() - term.log_c(x).sum()
        energy.backward()
        return energy

    opt.step(closure)
    assert (x.detach()[0] - expected).abs().max() < 1e-3
    # the measurement really pulls: the mode is not the prior mean
    assert (expected - prior.mean).abs().max() > 0.1


@pytest.mark.parametrize("operator, params", CASES, ids=[c[0] for c in CASES])
def test_optimizer_lands_on_the_free_energy_optimum(tmp_path, operator, params):
    prior, term = _term(tmp_path, operator, "mean", **params)
    t, w = 100, 1.0
    ab = float(prior.noise.alphas_cumprod[t])
    k = (1 - ab) ** 0.5 / (ab * prior.var + 1 - ab)
    a = 2 * w * k**2 * ab / D
    # λ chosen so that prior and term pull with comparable strength (the free energy's a ~ 1e-1)
    weight = float(a.mean()) * 4 * SIGMA**2 * D
    expected = closed_form(term, a, prior.mean, weight / D)
    options = Options(optimizer={"steps": 2000, "lr": Exponential(start=0.05, end=1e-5)}, timesteps=Constant(value=t),
                      prior_weight=w, gradient="full", noise_samples=16, init={"type": "zeros"})
    result = optimize(prior, Pixels(prior, clip_terms=False), [WeightedTerm("physics", term, weight)], [0], options)
    assert (result.x[0] - expected).abs().max() < 0.02
    assert (expected - prior.mean).abs().max() > 0.1
