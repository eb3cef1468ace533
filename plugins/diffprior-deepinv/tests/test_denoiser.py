"""as_denoiser: Tweedie's formula on the analytic Gaussian prior equals E[x₀ | x_t]; deepinv's samplers run with it."""

import pytest
import torch

from diffprior import GaussianPrior, NoiseSchedule
from diffprior_deepinv import as_denoiser

SHAPE = (1, 8, 8)


def _prior():
    g = torch.Generator().manual_seed(0)
    mean = 0.5 * (torch.rand(SHAPE, generator=g) - 0.5)
    var = 0.05 + 0.3 * torch.rand(SHAPE, generator=g)
    return GaussianPrior(mean, var, NoiseSchedule.linear(1000))


@pytest.mark.parametrize("t", [5, 200, 700])
def test_denoiser_is_the_analytic_posterior_mean(t):
    prior = _prior()
    g = torch.Generator().manual_seed(t)
    ab = float(prior.noise.alphas_cumprod[t])
    x0 = prior.mean + prior.var.sqrt() * torch.randn(3, *SHAPE, generator=g)
    x_t = ab**0.5 * x0 + (1 - ab) ** 0.5 * torch.randn(3, *SHAPE, generator=g)
    posterior_mean = prior.mean + ab**0.5 * prior.var / (ab * prior.var + 1 - ab) * (x_t - ab**0.5 * prior.mean)
    # deepinv's view of the same noisy image: u = (x_t/√ᾱ + 1)/2 with noise std σ = s_t / 2 on [0, 1]
    sigma = ((1 - ab) / ab) ** 0.5 / 2
    out = as_denoiser(prior)((x_t / ab**0.5 + 1) / 2, sigma)
    torch.testing.assert_close(out * 2 - 1, posterior_mean, atol=2e-5, rtol=1e-4)
    # and it denoises: nearer the truth than the noisy input
    assert ((out * 2 - 1) - x0).pow(2).mean() < (x_t / ab**0.5 - x0).pow(2).mean()


def test_per_sample_noise_levels_pick_per_sample_timesteps():
    prior = _prior()
    denoiser = as_denoiser(prior)
    u = torch.rand(2, *SHAPE)
    both = denoiser(u, torch.tensor([0.01, 0.5]))
    torch.testing.assert_close(both[0:1], denoiser(u[0:1], 0.01))
    torch.testing.assert_close(both[1:2], denoiser(u[1:2], 0.5))


def test_ddrm_and_diffpir_run_with_a_diffprior_prior():
    import deepinv as dinv

    prior = _prior()
    denoiser = as_denoiser(prior, clip=True)
    truth = ((prior.mean + 1) / 2).unsqueeze(0)
    physics = dinv.physics.Inpainting(img_size=SHAPE, mask=0.5, rng=torch.Generator().manual_seed(0),
                                      noise_model=dinv.physics.GaussianNoise(sigma=0.05))
    y = physics(truth)
    ddrm = dinv.sampling.DDRM(denoiser, sigmas=torch.linspace(1, 0, 20).numpy())
    x_ddrm = ddrm(y, physics, seed=1)
    diffpir = dinv.sampling.DiffPIR(denoiser, dinv.optim.L2(), sigma=0.05, max_iter=20)
    x_diffpir = diffpir(y, physics)
    for x in (x_ddrm, x_diffpir):
        assert x.shape == truth.shape and torch.isfinite(x).all()
        # the prior's mean image is the most likely one: a restoration lands near it
        assert (x - truth).pow(2).mean() < (physics.A_adjoint(y) - truth).pow(2).mean()
