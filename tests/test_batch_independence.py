"""A batch of B problems equals B runs of one with the same seeds."""

import pytest
import torch

from diffprior import GaussianPrior, NoiseSchedule, Options, Pixels, WeightedTerm, optimize
from diffprior.method.clipping import ClipPolicy
from diffprior.method.schedules import Constant, CosineLinear, Linear
from diffprior.method.terms import MaskedGaussian


class _Cfg:
    noise = 0.3


@pytest.mark.parametrize("clip", ["none", "relative", "max_norm"])
@pytest.mark.parametrize("gradient", ["full", "sds"])
def test_batch_equals_separate_runs(clip, gradient):
    shape = (1, 6, 6)
    prior = GaussianPrior(torch.zeros(shape), torch.full(shape, 0.2), NoiseSchedule.cosine(1000))
    term = MaskedGaussian(_Cfg(), None, torch.full(shape, 0.5), torch.ones(shape))
    policy = {"none": ClipPolicy(), "relative": ClipPolicy(mode="relative", value=Constant(value=0.5)),
              "max_norm": ClipPolicy(mode="max_norm", value=Constant(value=0.05))}[clip]
    options = Options(
        optimizer={"steps": 60, "lr": 0.05},
        timesteps=CosineLinear(high=999, jitter=50),  # per-sample jittered timesteps
        gradient=gradient,
        noise_samples=2,
        denoise={"from_t": 100, "steps": 10},
    )
    terms = [WeightedTerm("match", term, Linear(start=0.01, end=0.0, jitter=0.001), policy)]
    seeds = [11, 3, 42, 7]
    batch = optimize(prior, Pixels(prior), terms, seeds, options)
    for i, seed in enumerate(seeds):
        single = optimize(prior, Pixels(prior), terms, [seed], options)
        torch.testing.assert_close(batch.x[i : i + 1], single.x, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(batch.timesteps[:, i : i + 1], single.timesteps)
        torch.testing.assert_close(batch.losses["match"][:, i : i + 1], single.losses["match"], rtol=1e-5, atol=1e-6)
    # and different seeds really give different samples
    assert not torch.allclose(batch.x[0], batch.x[1])
    if clip != "none":  # the clip bites: every sample differs from its unclipped run
        unclipped = optimize(prior, Pixels(prior), [WeightedTerm("match", term, terms[0].weight)], seeds, options)
        assert ((batch.x - unclipped.x).flatten(1).abs().max(1).values > 1e-3).all()


def test_position_in_batch_does_not_matter():
    shape = (3,)
    prior = GaussianPrior(torch.zeros(shape), torch.ones(shape), NoiseSchedule.linear(1000))
    options = Options(optimizer={"steps": 30, "lr": 0.1})
    a = optimize(prior, Pixels(prior), [], [5, 9], options)
    b = optimize(prior, Pixels(prior), [], [9, 5], options)
    torch.testing.assert_close(a.x[0], b.x[1])
    torch.testing.assert_close(a.x[1], b.x[0])
