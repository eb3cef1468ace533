"""The built-in variables against their definitions, computed by hand or with math.erf."""

import math

import pytest
import torch

from diffprior import GaussianPrior, NoiseSchedule
from diffprior.method.rng import generators
from diffprior.method.variables import BoundedPixels, Pixels, SimplexLabelMap


def prior(shape=(1, 2, 2), data_range=(-1.0, 1.0)):
    return GaussianPrior(torch.zeros(shape), torch.ones(shape), NoiseSchedule.linear(100), data_range=data_range)


def test_pixels_are_the_parameters_and_terms_see_them_clipped_to_the_data_range():
    p = prior(data_range=(0.0, 2.0))
    params = torch.tensor([[[[-1.0, 0.5], [1.5, 3.0]]]])
    variable = Pixels(p)
    assert variable.param_shape == (1, 2, 2)
    assert variable.to_x(params, 0.3) is params
    torch.testing.assert_close(variable.term_view(params), torch.tensor([[[[0.0, 0.5], [1.5, 2.0]]]]))
    assert torch.equal(Pixels(p, clip_terms=False).term_view(params), params)


def test_pixels_start_from_a_standard_normal_per_sample():
    variable = Pixels(prior(shape=(4, 32, 32)))
    start = variable.init(generators([3, 4]), "cpu")
    assert start.shape == (2, 4, 32, 32)
    assert abs(start.mean().item()) < 0.05 and start.std().item() == pytest.approx(1.0, abs=0.03)  # 8192 draws
    torch.testing.assert_close(start[1], torch.randn(4, 32, 32, generator=torch.Generator().manual_seed(4)))


def test_bounded_pixels_are_a_sigmoid_onto_the_data_range():
    variable = BoundedPixels(prior(data_range=(-2.0, 6.0)))
    params = torch.tensor([0.0, math.log(3.0), -math.log(3.0), 50.0, -50.0])
    # lo + (hi − lo)·σ(η): σ(0) = 1/2, σ(log 3) = 3/4, σ(−log 3) = 1/4
    torch.testing.assert_close(variable.to_x(params, 0.0), torch.tensor([2.0, 4.0, 0.0, 6.0, -2.0]))


def test_label_map_sigma_anneals_geometrically():
    variable = SimplexLabelMap(prior(shape=(2, 1, 1)))
    assert variable.sigma(0.0) == pytest.approx(0.2) and variable.sigma(1.0) == pytest.approx(0.02)
    assert variable.sigma(0.5) == pytest.approx(math.sqrt(0.2 * 0.02))
    other = SimplexLabelMap(prior(shape=(2, 1, 1)), sigma_start=0.4, sigma_end=0.1)
    assert other.sigma(0.5) == pytest.approx(0.2)


def _phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_label_map_probabilities_are_normalised_interval_masses():
    variable = SimplexLabelMap(prior(shape=(3, 1, 2)), sigma_start=0.5, sigma_end=0.5)
    m = torch.tensor([1.0, 0.2, 1.6])  # class maps at one pixel
    params = torch.stack([m, torch.tensor([0.9, 0.9, 0.9])], -1).view(1, 3, 1, 2)
    mass = [_phi((1.5 - v) / 0.5) - _phi((0.5 - v) / 0.5) for v in m.tolist()]
    expected = torch.tensor([v / sum(mass) for v in mass])
    p = variable.probabilities(params, 0.7)
    torch.testing.assert_close(p[0, :, 0, 0], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(p[0, :, 0, 1], torch.full((3,), 1 / 3))  # equal maps: equal shares
    # the prior sees 2p − 1, the terms p again
    x = variable.to_x(params, 0.7)
    torch.testing.assert_close(x, 2 * p - 1)
    torch.testing.assert_close(variable.term_view(x), p)


def test_label_map_far_from_every_class_gives_zeros_not_nan():
    variable = SimplexLabelMap(prior(shape=(2, 1, 1)))
    p = variable.probabilities(torch.full((1, 2, 1, 1), 40.0), 1.0)
    assert torch.equal(p, torch.zeros_like(p))


def test_label_map_starts_near_one_half():
    variable = SimplexLabelMap(prior(shape=(4, 32, 32)))
    start = variable.init(generators([0]), "cpu")
    assert start.shape == (1, 4, 32, 32)
    assert start.mean().item() == pytest.approx(0.5, abs=0.005) and start.std().item() == pytest.approx(0.1, abs=0.003)
    # drawn from the sample's own generator, like every start
    torch.testing.assert_close(start[0], 0.5 + 0.1 * torch.randn(4, 32, 32, generator=torch.Generator().manual_seed(0)))


def test_label_map_shares_sum_to_one_even_when_the_masses_do_not():
    variable = SimplexLabelMap(prior(shape=(3, 1, 1)), sigma_start=0.2, sigma_end=0.2)
    m = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)  # masses ≈ 0.988, 0, 0: their sum is below 1
    mass = _phi(0.5 / 0.2) - _phi(-0.5 / 0.2)
    assert mass < 0.99
    torch.testing.assert_close(variable.probabilities(m, 0.0).flatten(), torch.tensor([1.0, 0.0, 0.0]))


def test_bounded_pixels_terms_see_x_as_it_is():
    variable = BoundedPixels(prior())
    x = torch.tensor([0.3, -0.9])
    assert variable.term_view(x) is x
