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


def test_predict_x0_is_the_gaussian_posterior_mean():
    # for x0 ~ N(μ, v): E[x0 | x_t] = μ + √ᾱ·v·(x_t − √ᾱ·μ) / (ᾱ·v + 1 − ᾱ), Tweedie's formula
    mean, var = torch.tensor([0.5, -0.3, 0.0]), torch.tensor([0.04, 0.25, 1.0])
    prior = GaussianPrior(mean, var, NoiseSchedule.linear(1000))
    x_t = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 10, 300, 700, 999])
    a = prior.noise.alphas_cumprod[t].unsqueeze(1).float()
    expected = mean + a.sqrt() * var * (x_t - a.sqrt() * mean) / (a * var + 1 - a)
    torch.testing.assert_close(prior.predict_x0(x_t, t), expected, atol=1e-4, rtol=1e-4)  # ᾱ_999 ≈ 4e-5: fp32 division
    # a given noise prediction is used as it is
    torch.testing.assert_close(prior.predict_x0(x_t, t, eps=torch.zeros_like(x_t)), x_t / a.sqrt())


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


def test_linear_schedule_scales_its_ends_with_T():
    # Ho et al.: β from 1e-4 to 0.02 at T = 1000, scaled by 1000/T for other T
    lin = NoiseSchedule.linear(500)
    assert lin.T == 500 and lin.name == "linear"
    assert lin.betas[0].item() == pytest.approx(2e-4) and lin.betas[-1].item() == pytest.approx(0.04)
    # computed in float64 (float32 betas would move ᾱ_T by ~1e-6 relative)
    assert lin.betas.dtype == torch.float64
    assert lin.betas[250].item() == pytest.approx(2e-4 + (0.04 - 2e-4) * 250 / 499, rel=1e-12)
    assert NoiseSchedule.named("linear", 250).betas[-1].item() == pytest.approx(0.08)


def test_cosine_schedule_offset_and_beta_cap():
    import math

    T, s = 10, 0.1
    cos = NoiseSchedule.cosine(T, s=s, max_beta=0.5)
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    assert cos.alphas_cumprod[3].item() == pytest.approx(f(4) / f(0), rel=1e-9)
    assert cos.betas[-1].item() == 0.5  # 1 − f(T)/f(T−1) is ~1: capped
    assert NoiseSchedule.named("cosine", 10).betas[-1].item() == pytest.approx(0.999)
    assert cos.to_config() == {"name": "cosine", "T": 10}


def test_alpha_bar_is_the_running_product_shaped_to_broadcast():
    sched = NoiseSchedule(torch.tensor([0.1, 0.2, 0.5]))
    assert sched.name == "custom" and sched.T == 3
    torch.testing.assert_close(sched.alphas_cumprod, torch.tensor([0.9, 0.72, 0.36], dtype=torch.float64))
    like = torch.zeros(2, 3, 4)
    a = sched.alpha_bar(torch.tensor([2, 0]), like)
    assert a.shape == (2, 1, 1) and a.dtype == torch.float32
    torch.testing.assert_close(a.flatten(), torch.tensor([0.36, 0.9]))
    assert sched.alpha_bar(torch.tensor([1.0]), torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(0.72)


@pytest.mark.parametrize("betas", [[0.0, 0.1], [0.1, 1.0], [[0.1, 0.2]], [-0.1]])
def test_betas_outside_zero_one_are_refused(betas):
    with pytest.raises(ValueError, match=r"^betas must be a 1-D tensor with values in \(0, 1\)$"):
        NoiseSchedule(torch.tensor(betas))


def test_schedules_have_1000_steps_by_default():  # DDPM's T
    assert NoiseSchedule.linear().T == NoiseSchedule.cosine().T == NoiseSchedule.named("cosine").T == 1000
    assert NoiseSchedule.named("linear").T == 1000


def test_an_unknown_schedule_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="^unknown noise schedule .quadratic.: use .linear. or .cosine.$"):
        NoiseSchedule.named("quadratic", 10)
