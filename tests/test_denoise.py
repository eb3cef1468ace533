"""The DDPM/DDIM denoiser against the analytic Gaussian prior: samples must follow N(μ, σ²)."""

import pytest
import torch

from diffprior import GaussianPrior, NoiseSchedule


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_samples_follow_the_gaussian(schedule, method):
    mean = torch.tensor([0.5, -0.3, 0.0])
    var = torch.tensor([0.04, 0.25, 0.01])
    prior = GaussianPrior(mean, var, NoiseSchedule.named(schedule, 1000))
    x = prior.sample(4000, steps=100, method=method, seeds=range(4000))
    assert x.shape == (4000, 3)
    torch.testing.assert_close(x.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(x.var(0), var, atol=0.03, rtol=0.15)


def test_denoise_from_intermediate_t_keeps_the_sample_close():
    prior = GaussianPrior(torch.zeros(4), torch.ones(4), NoiseSchedule.linear(1000))
    x = torch.full((64, 4), 0.8)
    gens = [torch.Generator().manual_seed(i) for i in range(64)]
    small = prior.denoise(x, from_t=20, steps=20, generators=gens)
    large = prior.denoise(x, from_t=900, steps=50, generators=gens)
    # from a small t the result stays near the input; from a large t it forgets it
    assert (small - 0.8).abs().mean() < 0.2
    assert (large - 0.8).abs().mean() > 0.4


def test_same_seed_same_sample_whatever_the_batch():
    prior = GaussianPrior(torch.zeros(2), torch.ones(2), NoiseSchedule.cosine(1000))
    a = prior.sample(3, steps=20, seeds=[7, 8, 9])
    b = prior.sample(1, steps=20, seeds=[8])
    torch.testing.assert_close(a[1:2], b)


def test_noise_schedules_match_their_definitions():
    lin = NoiseSchedule.linear(1000)
    assert lin.betas[0].item() == pytest.approx(1e-4) and lin.betas[-1].item() == pytest.approx(0.02)
    cos = NoiseSchedule.cosine(1000)
    assert cos.betas.max().item() <= 0.999
    import math

    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2
    assert cos.alphas_cumprod[499].item() == pytest.approx(f(500) / f(0), rel=1e-6)
