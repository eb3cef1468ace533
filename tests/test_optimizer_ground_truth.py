"""The optimizer's every step checked against an independent computation.

A Gaussian prior N(μ, σ²I) with σ² = 1e-8 makes the prior's gradient deterministic: with
k = √(1−ᾱ)/(ᾱσ² + 1 − ᾱ), ε − ε_θ(x_t) = (1 − k√(1−ᾱ))·ε − k√ᾱ(x − μ), and the ε part is
~1e-8 of the rest. So per sample, with D dimensions and prior weight w,

    prior loss  ‖ε − ε_θ‖²/D = k²ᾱ‖x − μ‖²/D
    full:  ∇ = 2w·k²ᾱ(x − μ)/D          sds:  ∇ = 2w·kᾱ(x − μ)/D

and the match term −λ log c = λ‖x − y‖²/(2s²) has gradient λ(x − y)/s². Plain SGD then
makes each step x ← x − lr·(∇prior + clip(∇term)) computable here, with the timestep
t_i = round(schedule(i/S)) and the clip written from its definition (ClipPolicy's doc):
max_norm v → the term's gradient norm is at most v; relative r → at most r·EMA of the
prior-gradient norm, EMA_0 = ‖∇prior‖_0, EMA_i = e·EMA_{i−1} + (1 − e)·‖∇prior‖_i; both
per sample. The runs compare step by step with what optimize() did.
"""

from __future__ import annotations

import math

import pytest
import torch

from diffprior import ClipPolicy, GaussianPrior, NoiseSchedule, Options, Pixels, WeightedTerm, optimize
from diffprior.method.schedules import Constant, Exponential, Linear
from diffprior.method.terms import MaskedGaussian

SHAPE = (1, 3, 3)
D = 9
TARGET = 0.5
NOISE = 1.0  # the match term's s


class _MatchSettings:  # what MaskedGaussian reads from its config
    noise = NOISE


def sharp_prior(T: int = 1000) -> GaussianPrior:
    mean = torch.linspace(-0.4, 0.4, D).view(SHAPE)
    return GaussianPrior(mean, torch.full(SHAPE, 1e-8), NoiseSchedule.linear(T))


def match_term() -> MaskedGaussian:
    return MaskedGaussian(_MatchSettings(), None, torch.full(SHAPE, TARGET), torch.ones(SHAPE))


def run(prior, terms, x0, *, steps, lr, timesteps, prior_weight=1.0, gradient="full", optimizer="sgd", seeds=None):
    options = Options(optimizer={"type": optimizer, "steps": steps, "lr": lr}, timesteps=timesteps,
                      prior_weight=prior_weight, gradient=gradient)
    return optimize(prior, Pixels(prior, clip_terms=False), terms, seeds or list(range(len(x0))), options, init_params=x0)


def k_and_alpha_bar(prior, t: int) -> tuple[float, float]:
    ab = float(prior.noise.alphas_cumprod[t])
    var = float(prior.var.flatten()[0])
    return (1 - ab) ** 0.5 / (ab * var + 1 - ab), ab


def expected_timesteps(start: float, end: float, steps: int, T: int) -> list[int]:
    return [min(max(round(start + (end - start) * i / steps), 1), T - 1) for i in range(steps)]


def simulate(prior, x0, *, steps, lr, ts, weights, prior_weights, gradient, clip):
    """Plain SGD on the free energy, written from the formulas in the module docstring.
    ``clip`` is (mode, value of step i, ema). Returns the x of every step, the final x and,
    per step, which samples were clipped."""
    x = x0.double().clone()
    mu = prior.mean.double()
    mode, value, ema = clip
    average, xs, clipped = None, [], []
    for i in range(steps):
        xs.append(x.clone())
        k, ab = k_and_alpha_bar(prior, ts[i])
        g_prior = 2 * prior_weights[i] * (k * k if gradient == "full" else k) * ab * (x - mu) / D
        g_term = weights[i] * (x - TARGET) / NOISE**2
        term_norm = g_term.flatten(1).norm(dim=1)
        prior_norm = g_prior.flatten(1).norm(dim=1)
        if mode == "max_norm":
            limit = torch.full_like(term_norm, value(i))
        elif mode == "relative":
            average = prior_norm if average is None else ema * average + (1 - ema) * prior_norm
            limit = value(i) * average
        else:
            limit = torch.full_like(term_norm, math.inf)
        factor = torch.clamp(limit / term_norm, max=1.0)
        clipped.append(factor < 1)
        x = x - lr * (g_prior + factor.view(-1, 1, 1, 1) * g_term)
    return xs, x, torch.stack(clipped)


CLIPS = {
    # name: (ClipPolicy, the same rule as (mode, value of step i, ema) for a 6-step run)
    "none": (ClipPolicy(), ("none", None, None)),
    "max_norm": (ClipPolicy(mode="max_norm", value=Constant(value=0.3)), ("max_norm", lambda i: 0.3, None)),
    "max_norm schedule": (ClipPolicy(mode="max_norm", value=Linear(start=0.6, end=0.1)),
                          ("max_norm", lambda i: 0.6 + (0.1 - 0.6) * i / 6, None)),
    "relative": (ClipPolicy(mode="relative", value=Constant(value=0.5), ema=0.8), ("relative", lambda i: 0.5, 0.8)),
    "relative schedule": (ClipPolicy(mode="relative", value=Linear(start=1.0, end=0.2), ema=0.3),
                          ("relative", lambda i: 1.0 + (0.2 - 1.0) * i / 6, 0.3)),
}


@pytest.mark.parametrize("gradient", ["full", "sds"])
@pytest.mark.parametrize("clip", list(CLIPS))
def test_every_step_matches_the_free_energy_gradient_with_per_sample_clipping(clip, gradient):
    prior = sharp_prior()
    policy, rule = CLIPS[clip]
    steps, lr = 6, 0.2
    # sample 0 starts far from the target (its term gradient is large: clipped), sample 1 on
    # it (small: not clipped), sample 2 in between; a clip factor shared by the batch, or
    # none at all, moves them differently from the per-sample rule
    x0 = torch.stack([torch.full(SHAPE, -3.0), torch.full(SHAPE, TARGET + 0.001), torch.full(SHAPE, -0.2)])
    x0[:, 0, 0, 0] += torch.tensor([0.5, 0.0, 0.3])
    weight = Linear(start=2.0, end=1.0)
    result = run(prior, [WeightedTerm("match", match_term(), weight, policy)], x0, steps=steps, lr=lr,
                 timesteps=Linear(start=400, end=50), prior_weight=Linear(start=1.0, end=0.5), gradient=gradient)
    ts = expected_timesteps(400, 50, steps, prior.T)
    weights = [2.0 + (1.0 - 2.0) * i / steps for i in range(steps)]
    prior_weights = [1.0 + (0.5 - 1.0) * i / steps for i in range(steps)]
    xs, final, clipped = simulate(prior, x0, steps=steps, lr=lr, ts=ts, weights=weights,
                                  prior_weights=prior_weights, gradient=gradient, clip=rule)

    assert result.timesteps.tolist() == [[t] * 3 for t in ts]
    torch.testing.assert_close(result.params.double(), final, rtol=1e-4, atol=1e-5)
    # the losses of every step are those of that step's x and t: the trajectory matches
    for i in range(steps):
        k, ab = k_and_alpha_bar(prior, ts[i])
        prior_loss = k * k * ab * (xs[i] - prior.mean.double()).pow(2).flatten(1).sum(1) / D
        term_loss = weights[i] * (xs[i] - TARGET).pow(2).flatten(1).sum(1) / (2 * NOISE**2)
        torch.testing.assert_close(result.losses["prior"][i].double(), prior_loss, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(result.losses["match"][i].double(), term_loss, rtol=1e-4, atol=1e-6)
    if clip != "none":  # the case really exercises both sides of the clip, in one batch
        assert clipped[:, 0].all() and not clipped[0, 1], clipped


def test_timesteps_follow_the_schedule_clamped_to_the_prior():
    prior = sharp_prior(T=200)
    x0 = torch.zeros(2, *SHAPE)
    # from 400 (above T − 1 = 199) down to −300 (below 1): clamped at both ends
    result = run(prior, [], x0, steps=20, lr=0.1, timesteps=Linear(start=400, end=-300))
    expected = expected_timesteps(400, -300, 20, 200)
    assert expected[0] == 199 and expected[-1] == 1 and len(set(expected)) > 5
    assert result.timesteps.tolist() == [[t, t] for t in expected]


def test_jittered_timesteps_stay_within_the_jitter_per_sample():
    prior = sharp_prior()
    schedule = Linear(start=800, end=200, jitter=30)
    result = run(prior, [], torch.zeros(4, *SHAPE), steps=20, lr=0.1, timesteps=schedule)
    base = torch.tensor(expected_timesteps(800, 200, 20, 1000), dtype=torch.float64)[:, None]
    offset = result.timesteps.double() - base
    assert offset.abs().max() <= 31 and offset.abs().max() > 10
    assert not torch.equal(result.timesteps[:, 0], result.timesteps[:, 1])  # drawn per sample
    # the first draw of each sample's own generator is step 0's jitter, added to the schedule
    from diffprior.method.rng import generators, per_sample_uniform

    first = (800 + per_sample_uniform(generators(range(4)), -30, 30)).round().long()
    assert torch.equal(result.timesteps[0].long(), first)


@pytest.mark.parametrize("gradient", ["full", "sds"])
def test_prior_weight_moves_the_optimum_as_the_closed_form_says(gradient):
    """With a fixed t the optimum is the weighted mean η* = (aμ + b·y)/(a + b), with
    a = 2w·k²ᾱ/D (full) or 2w·kᾱ/D (sds) and b = λ/s²: the prior weight w moves it."""
    prior = sharp_prior()
    t = 300
    k, ab = k_and_alpha_bar(prior, t)
    a_per_weight = 2 * (k * k if gradient == "full" else k) * ab / D
    weight = a_per_weight  # λ: the term pulls as hard as the prior at w = 1
    optima = []
    for w in (0.25, 4.0):
        a, b = w * a_per_weight, weight / NOISE**2
        expected = (a * prior.mean.double() + b * TARGET) / (a + b)
        result = run(prior, [WeightedTerm("match", match_term(), weight)], torch.zeros(2, *SHAPE), steps=400,
                     lr=Exponential(start=0.05, end=1e-4), timesteps=Constant(value=t), prior_weight=w,
                     gradient=gradient, optimizer="adam")
        torch.testing.assert_close(result.x.double(), expected.expand(2, *SHAPE), atol=2e-3, rtol=0)
        optima.append(result.x)
    # w = 0.25 leaves x 80% of the way to the target, w = 4 only 20%: far apart
    assert (optima[0] - optima[1]).abs().mean() > 0.2


@pytest.mark.parametrize("clip", ["relative", "max_norm"])
def test_batch_equals_separate_runs_with_a_clip_that_bites(clip):
    """Batch independence with per-sample clip factors that differ and are below 1: a run of
    the batch equals runs of each sample, and differs from the unclipped run."""
    prior = sharp_prior()
    policy = CLIPS[clip][0]
    x0 = torch.stack([torch.full(SHAPE, -3.0), torch.full(SHAPE, -1.0), torch.full(SHAPE, 2.0)])
    settings = dict(steps=8, lr=0.3, timesteps=Linear(start=900, end=100))
    terms = [WeightedTerm("match", match_term(), 2.0, policy)]
    batch = run(prior, terms, x0, **settings)
    unclipped = run(prior, [WeightedTerm("match", match_term(), 2.0)], x0, **settings)
    for i in range(3):
        alone = run(prior, terms, x0[i:i + 1], seeds=[i], **settings)
        torch.testing.assert_close(batch.x[i:i + 1], alone.x, rtol=1e-5, atol=1e-6)
        assert (batch.x[i] - unclipped.x[i]).abs().max() > 1e-2, f"the clip did not change sample {i}"
