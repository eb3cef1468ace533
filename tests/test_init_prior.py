"""``init.type = "prior"``: the optimisation starts at an unconditional sample of the prior,
drawn per sample from the sample's own generator. Checked against an analytic Gaussian prior,
whose samples must follow N(μ, σ²) and not the N(0, I) of the default start."""

import pytest
import torch

from diffprior import ConfigError, GaussianPrior, NoiseSchedule, Options, Pixels, optimize
from diffprior.config import load_config
from diffprior.runner import build
from diffprior.variables import BoundedPixels, SimplexLabelMap

MEAN = torch.tensor([0.5, -0.3, 0.0])
VAR = torch.tensor([0.04, 0.25, 0.01])


def gaussian(mean=MEAN, var=VAR, data_range=(-1e4, 1e4)):
    return GaussianPrior(mean, var, NoiseSchedule.cosine(1000), data_range=data_range)


def start(prior, variable, seeds, **init):
    """The parameters a run starts from (lr 0: one step leaves them unchanged)."""
    o = Options(optimizer={"steps": 1, "lr": 0.0}, init={"type": "prior", **init})
    return optimize(prior, variable, [], seeds, o).params


@pytest.mark.parametrize("method", ["ddim", "ddpm"])
def test_the_start_follows_the_prior_distribution(method):
    p = gaussian()
    x = start(p, Pixels(p, clip_terms=False), range(3000), steps=50, method=method)
    # N(0, 1) per coordinate would miss both by far (means off by 0.3–0.5, variances by 4–100×)
    torch.testing.assert_close(x.mean(0), MEAN, atol=0.03, rtol=0)
    torch.testing.assert_close(x.var(0), VAR, atol=0.01, rtol=0.15)


def test_the_start_is_per_sample_and_seeded():
    p = gaussian()
    together = start(p, Pixels(p), [4, 9, 11], steps=10)
    alone = start(p, Pixels(p), [9], steps=10)
    torch.testing.assert_close(together[1:2], alone)  # the same whatever the batch
    assert not torch.allclose(together[0], together[2])  # another seed, another sample
    # DDIM is deterministic given the starting noise: the seed's first N(0, I) draw
    noise = torch.randn(3, generator=torch.Generator().manual_seed(9)).unsqueeze(0)
    expected = p.denoise(noise, p.T - 1, steps=10, method="ddim", add_noise=False)
    torch.testing.assert_close(alone, expected)


def test_an_ancestral_start_draws_its_noise_from_each_samples_generator():
    from diffprior.optimizer import prior_sample
    from diffprior.rng import generators

    p = gaussian()
    together = start(p, Pixels(p), [4, 9, 11], steps=10, method="ddpm")
    alone = start(p, Pixels(p), [9], steps=10, method="ddpm")
    torch.testing.assert_close(together[1:2], alone)  # the same whatever the batch position
    assert (alone - start(p, Pixels(p), [9], steps=10, method="ddim")).abs().max() > 1e-3
    # DDIM is prior_sample's default method
    torch.testing.assert_close(prior_sample(p, generators([9]), 10), start(p, Pixels(p), [9], steps=10, method="ddim"))


def test_bounded_pixels_start_at_the_logit_of_the_sample():
    p = gaussian(mean=torch.tensor([0.2, -0.4]), var=torch.tensor([0.01, 0.01]), data_range=(-1.0, 1.0))
    variable = BoundedPixels(p)
    params = start(p, variable, [0, 1, 2], steps=10)
    x = start(p, Pixels(p), [0, 1, 2], steps=10)
    torch.testing.assert_close(variable.to_x(params, 0.0), x, atol=1e-5, rtol=0)
    # a sample on the range's edge still gives finite parameters
    assert torch.isfinite(variable.params_from_x(torch.tensor([[-1.0, 1.0]]))).all()


def test_a_variable_that_cannot_invert_its_map_is_refused():
    p = GaussianPrior(torch.zeros(2, 1, 1), torch.ones(2, 1, 1), NoiseSchedule.linear(100))
    with pytest.raises(ConfigError, match=r"^init: type 'prior' needs a variable that maps x back to its parameters: "
                                          r"SimplexLabelMap does not define params_from_x$"):
        start(p, SimplexLabelMap(p), [0])


def test_a_config_asking_for_it_with_such_a_variable_fails_before_running(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('batch = 1\n[prior]\ntype = "gaussian"\nshape = [2, 1, 1]\n'
                    '[variable]\ntype = "simplex-labels"\n[init]\ntype = "prior"\n')
    with pytest.raises(ConfigError, match="SimplexLabelMap .*variable.type = 'simplex-labels'"):
        build(load_config(path))
    config = load_config(path, ['variable={type="pixels"}', "init.steps=5", 'init.method="ddpm"'])
    assert (config.init.steps, config.init.method) == (5, "ddpm")
    build(config)
