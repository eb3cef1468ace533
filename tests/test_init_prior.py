"""``init.type = "prior"``: the optimisation starts at an unconditional sample of the prior,
drawn per sample from the sample's own generator. Checked against an analytic Gaussian prior,
whose samples must follow N(μ, σ²) and not the N(0, I) of the default start."""

import pytest
import torch

from diffprior import ConfigError, GaussianPrior, NoiseSchedule, Options, Pixels, optimize
from diffprior.config.files import load_config
from diffprior.runs.runner import build
from diffprior.method.variables import BoundedPixels, SimplexLabelMap

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
    from diffprior.method.optimizer import prior_sample
    from diffprior.method.rng import generators

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


class HighFirstCoordinate:
    """log c = −(x₀ − 0.9)²: prefers samples whose first coordinate is near 0.9."""

    def log_c(self, x):
        return -(x[:, 0] - 0.9).pow(2)

    def metrics(self, x):
        return {}


def candidate_starts(prior, seed, candidates, steps):
    """The seed's candidates by hand: DDIM from its 1st, 2nd, ... N(0, I) draw."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.stack([torch.randn(3, generator=g) for _ in range(candidates)])
    return prior.denoise(noise, prior.T - 1, steps=steps, method="ddim", add_noise=False)


def best_of(prior, seeds, candidates, weight=2.0, steps=10):
    from diffprior import WeightedTerm

    o = Options(optimizer={"steps": 1, "lr": 0.0},
                init={"type": "prior", "steps": steps, "candidates": candidates})
    terms = [WeightedTerm("high", HighFirstCoordinate(), weight)]
    return optimize(prior, Pixels(prior, clip_terms=False), terms, seeds, o).params


def test_candidates_start_from_the_one_the_terms_score_highest():
    p = gaussian()
    seeds = [3, 8, 21, 40]
    chosen = best_of(p, seeds, candidates=6)
    for row, seed in zip(chosen, seeds):
        cands = candidate_starts(p, seed, 6, 10)
        best = cands[(-(cands[:, 0] - 0.9).pow(2)).argmax()]
        torch.testing.assert_close(row, best)
    # one candidate is the plain prior start; so is any number of them when there is no term
    torch.testing.assert_close(best_of(p, seeds, candidates=1), start(p, Pixels(p, clip_terms=False), seeds, steps=10))
    o = Options(optimizer={"steps": 1, "lr": 0.0}, init={"type": "prior", "steps": 10, "candidates": 6})
    torch.testing.assert_close(optimize(p, Pixels(p, clip_terms=False), [], seeds, o).params,
                               start(p, Pixels(p, clip_terms=False), seeds, steps=10))


def test_candidates_shift_the_starts_towards_the_constraint_and_stay_per_sample():
    p = gaussian()
    plain = best_of(p, range(400), candidates=1)
    picked = best_of(p, range(400), candidates=8)
    # N(0.5, 0.2²) for coordinate 0: the best of 8 sits much nearer 0.9 than one draw does
    assert (picked[:, 0] - 0.9).abs().mean() < 0.5 * (plain[:, 0] - 0.9).abs().mean()
    # the other coordinates are untouched by the choice: still the prior's spread
    assert 0.15 < picked[:, 1].std() < 0.7
    torch.testing.assert_close(best_of(p, [21], candidates=8), picked[21:22])  # batch-independent
    # a term whose weight is 0 at the start cannot choose: the first candidate is kept
    torch.testing.assert_close(best_of(p, range(5), candidates=8, weight=0.0), plain[:5])


def test_candidates_must_be_positive():
    with pytest.raises(Exception, match="candidates"):
        Options(init={"type": "prior", "candidates": 0})


def test_candidates_show_their_own_progress_bar(capsys):
    from diffprior import WeightedTerm

    p = gaussian()
    o = Options(optimizer={"steps": 1, "lr": 0.0}, init={"type": "prior", "steps": 5, "candidates": 3})
    terms = [WeightedTerm("high", HighFirstCoordinate(), 1.0)]
    optimize(p, Pixels(p, clip_terms=False), terms, [0, 1], o, progress=True)
    assert "prior start candidates" in capsys.readouterr().err
    optimize(p, Pixels(p, clip_terms=False), terms, [0, 1], o, progress=False)
    assert "prior start candidates" not in capsys.readouterr().err
