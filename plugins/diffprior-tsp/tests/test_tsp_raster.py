"""The rasteriser and the tsp-edges variable against pixels counted and probabilities computed by hand."""

from __future__ import annotations

import math
import re

import pytest
import torch

from diffprior import ConfigError
from diffprior_tsp.raster import EdgeImages, city_masks, pair_indices, render_tours, segment_masks
from diffprior_tsp.variable import TspEdges


class FlatPrior:
    shape = (1, 32, 32)
    data_range = (-1.0, 1.0)
    device = torch.device("cpu")


def test_a_segment_covers_the_pixels_within_one_of_it():
    mask = segment_masks(torch.tensor([[10, 10]]), torch.tensor([[10, 20]]), size=32)[0].view(32, 32)
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[9:12, 10:21] = True  # rows 9-11 along the segment (thickness 2)
    expected[10, 9] = expected[10, 21] = True  # one pixel beyond each end; the diagonals are √2 away
    assert torch.equal(mask, expected)
    # a zero-length segment is a plus sign around its pixel
    dot = segment_masks(torch.tensor([[5, 5]]), torch.tensor([[5, 5]]), size=32)[0].view(32, 32)
    assert dot.sum() == 5 and dot[4:7, 5].all() and dot[5, 4:7].all()
    # a thicker line: within 2 of a vertical segment
    wide = segment_masks(torch.tensor([[4, 8]]), torch.tensor([[12, 8]]), size=32, thickness=4.0)[0].view(32, 32)
    assert wide[8, 6:11].all() and not wide[8, 5] and not wide[8, 11]


def test_city_discs_have_radius_two():
    # a city in the middle (0.5 → pixel 15) and one in the corner (0 → pixel 0)
    mask = city_masks(torch.tensor([[[0.5, 0.5], [0.0, 0.0]]]), size=32)[0].view(32, 32)
    assert mask.sum() == 13 + 6  # r² + c² ≤ 4: 13 pixels, of which 6 in the corner's quadrant
    assert mask[15, 13] and mask[15, 17] and mask[16, 16] and not mask[17, 17]


def test_pairs_are_the_upper_triangle():
    i, j = pair_indices(4)
    assert i.tolist() == [0, 0, 0, 1, 1, 2] and j.tolist() == [1, 2, 3, 2, 3, 3]


def _dense(coords, size):
    """Σ_p w_p·mask_p assembled densely, one pair at a time."""
    from diffprior_tsp.raster import city_pixels

    pixels = city_pixels(torch.as_tensor(coords, dtype=torch.float64), size)
    i, j = pair_indices(coords.shape[1])
    return torch.stack([segment_masks(pixels[b, i], pixels[b, j], size).double() for b in range(coords.shape[0])])


def test_weighted_sums_of_edge_images():
    coords = torch.tensor([[[0.1, 0.1], [0.9, 0.2], [0.5, 0.8], [0.2, 0.6]],
                           [[0.8, 0.8], [0.1, 0.5], [0.6, 0.1], [0.3, 0.3]]], dtype=torch.float64)
    weights = torch.rand(2, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    masks = _dense(coords, 32)  # [B, P, size²]
    per_instance = EdgeImages(coords, size=32).weighted_sum(weights)
    torch.testing.assert_close(per_instance, torch.einsum("bp,bpk->bk", weights, masks))
    # one instance drawn for several samples: every row on the same cities
    shared = EdgeImages(coords[:1], size=32).weighted_sum(weights)
    torch.testing.assert_close(shared, torch.einsum("bp,pk->bk", weights, masks[0]))
    # two cities have one pair: three samples of it are three multiples of its one segment
    two = torch.tensor([[[0.1, 0.1], [0.9, 0.2]]], dtype=torch.float64)
    samples = torch.tensor([[0.5], [1.0], [0.25]], dtype=torch.float64)
    drawn = EdgeImages(two, size=32).weighted_sum(samples)
    torch.testing.assert_close(drawn, samples * _dense(two, 32)[0])


def test_adjacency_is_a_row_softmax_of_minus_temperature_times_the_logits():
    variable = TspEdges(FlatPrior(), temperature=0.5)
    L = torch.tensor([[[7.0, 0.0, 2 * math.log(3.0)], [0.0, -1.0, 0.0], [4.0, 4.0, 4.0]]])
    A = variable.adjacency(L)
    # row 0: logits 0 and −ln 3 → 3/4, 1/4; row 1: equal → 1/2, 1/2; the diagonal never
    torch.testing.assert_close(A[0], torch.tensor([[0.0, 0.75, 0.25], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]))


def test_the_image_draws_pair_weights_on_a_minus_one_background_with_cities_at_one():
    coords = torch.tensor([[[0.1, 0.1], [0.9, 0.2], [0.5, 0.8]]], dtype=torch.float64)
    variable = TspEdges(FlatPrior(), coords)
    A = torch.tensor([[[0.0, 0.6, 0.4], [0.2, 0.0, 0.8], [1.0, 0.0, 0.0]]])
    image = variable.image_from_adjacency(A).view(32 * 32)
    masks = _dense(coords, 32)[0]  # pairs (0, 1), (0, 2), (1, 2)
    pair = torch.tensor([0.6 + 0.2, 0.4 + 1.0, 0.8 + 0.0]) / 2
    expected = 2 * ((pair[:, None].double() * masks).sum(0) - 0.5)
    expected[city_masks(coords, 32)[0]] = 1.0
    torch.testing.assert_close(image, expected.float())
    assert image.min() == -1.0 and image.max() == 1.0


def test_tsp_edges_errors_name_what_is_missing():
    variable = TspEdges(FlatPrior(), size=5)
    with pytest.raises(ConfigError, match="^variable tsp-edges has no cities yet: give it instances before the run starts$"):
        variable.init([torch.Generator()], "cpu")
    with pytest.raises(ConfigError, match="the instances have 6 cities but this variable was set up for 5"):
        variable.set_cities(torch.rand(1, 6, 2))
    variable.set_cities(torch.rand(2, 5, 2, generator=torch.Generator().manual_seed(1)))
    assert variable.param_shape == (5, 5) and variable.size == 5
    with pytest.raises(ConfigError, match="3 samples were asked for but 2 instances are loaded"):
        variable.init([torch.Generator() for _ in range(3)], "cpu")
    start = variable.init([torch.Generator().manual_seed(s) for s in (3, 4)], "cpu")
    torch.testing.assert_close(start[1], torch.randn(5, 5, generator=torch.Generator().manual_seed(4)))
    one = TspEdges(FlatPrior(), torch.rand(1, 5, 2))  # one instance serves any number of samples
    assert one.init([torch.Generator() for _ in range(3)], "cpu").shape == (3, 5, 5)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 32, 16), (32, 32)])
def test_tsp_edges_needs_a_one_channel_square_image_prior(shape):
    class Other(FlatPrior):
        pass

    Other.shape = shape
    with pytest.raises(ConfigError, match=r"^variable tsp-edges needs a one-channel square image prior; this prior's samples are "
                                          + re.escape(str(shape)) + "$"):
        TspEdges(Other())


def test_the_default_temperature_is_the_recipes_tenth():
    L = torch.tensor([[[0.0, 0.0, 10 * math.log(3.0)], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    torch.testing.assert_close(TspEdges(FlatPrior()).adjacency(L)[0, 0], torch.tensor([0.0, 0.75, 0.25]))


def test_a_tour_image_at_another_size_drawn_by_hand():
    # two cities in opposite corners of a 16×16 image: pixels (0, 0) and (15, 15); the tour
    # goes there and back along the diagonal
    image = render_tours([[[0.0, 0.0], [1.0, 1.0]]], [[0, 1]], size=16)
    rows, cols = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    expected = torch.full((16, 16), -1.0)
    expected[(rows - cols).abs() <= 1] = 0.0  # within 1 of the diagonal: |r − c|/√2 ≤ 1
    expected[(rows**2 + cols**2 <= 4) | ((rows - 15) ** 2 + (cols - 15) ** 2 <= 4)] = 1.0
    assert image.shape == (1, 1, 16, 16)
    assert torch.equal(image[0, 0], expected)


def test_coordinates_are_read_in_double_precision_whatever_their_container():
    # 15 × 0.0666666666 = 0.999999999: pixel column 0 in double precision, but a float32
    # (what torch makes of a Python list) rounds the product up to 1.0, one pixel over. The
    # tsp-edges variable reads coordinates in double precision, so its image must agree
    coords = [[[0.0666666666, 0.5], [0.9, 0.5], [0.5, 0.9]]]
    exact = torch.tensor(coords, dtype=torch.float64)
    image = render_tours(coords, [[0, 1, 2]], size=16)
    assert torch.equal(image, render_tours(exact, [[0, 1, 2]], size=16))
    # the disc around (7, 0) stops at column 2; column 3 is the line to the next city
    assert image[0, 0, 7, 2] == 1.0 and image[0, 0, 7, 3] == 0.0
