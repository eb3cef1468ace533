"""The evaluation machinery: restarts baseline, best-of-K, paired bootstrap, and the numbers
`diffprior tsp eval` prints, checked against tours computed independently."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffprior.cli.main import main
from diffprior_tsp.decode import greedy_edge_tours, two_opt
from diffprior_tsp.evaluation import best_of, paired_bootstrap, perturbed_restarts
from diffprior_tsp.instances import is_tour, random_instances, solve_reference, tour_lengths, write_instances

torch.set_num_threads(1)


def _uniform_two_opt(coords):
    """Greedy by 1/d then 2-opt, written out here rather than through the solver module."""
    dist = np.linalg.norm(coords[:, :, None] - coords[:, None], axis=-1) + np.eye(coords.shape[1])
    return two_opt(coords, greedy_edge_tours(1.0 / dist))[0]


def test_one_restart_is_the_plain_decoding_and_more_restarts_never_hurt():
    coords = random_instances(6, 15, seed=21)
    one = perturbed_restarts(coords, None, restarts=1)
    np.testing.assert_array_equal(one, _uniform_two_opt(coords))
    eight = tour_lengths(coords, perturbed_restarts(coords, None, restarts=8, seed=3))
    many = tour_lengths(coords, perturbed_restarts(coords, None, restarts=40, seed=3))
    # restarts 0..7 of the 40 are the same draws as the 8: the best of 40 can only be shorter
    assert (many <= eight + 1e-12).all() and (eight <= tour_lengths(coords, one) + 1e-12).all()
    assert many.sum() < tour_lengths(coords, one).sum()  # on 6 instances noise finds something


def test_restarts_of_an_instance_do_not_depend_on_the_others():
    coords = random_instances(5, 12, seed=22)
    together = perturbed_restarts(coords, None, restarts=6, seed=10, chunk=7)
    alone = perturbed_restarts(coords[3:4], None, restarts=6, seed=13)
    np.testing.assert_array_equal(together[3], alone[0])


def test_restarts_follow_a_given_heatmap():
    """A heat-map that puts all its mass on one tour: with little noise every restart decodes it."""
    coords = random_instances(2, 10, seed=23)
    target = np.stack([np.random.default_rng(k).permutation(10) for k in range(2)])
    adjacency = np.zeros((2, 10, 10))
    for b, tour in enumerate(target):
        adjacency[b, tour, np.roll(tour, -1)] = 1e6
    tours = perturbed_restarts(coords, adjacency, restarts=3, sigma=0.01, two_opt_moves=False)
    for b in range(2):
        assert is_tour(tours[b], 10)
        assert tour_lengths(coords[b:b + 1], tours[b:b + 1])[0] == pytest.approx(
            tour_lengths(coords[b:b + 1], target[b:b + 1])[0])


def test_best_of_picks_the_shortest_per_instance():
    coords = random_instances(3, 8, seed=24)
    a = np.stack([np.arange(8)] * 3)
    b = _uniform_two_opt(coords)
    picked = best_of(coords, [a, b])
    expected = np.minimum(tour_lengths(coords, a), tour_lengths(coords, b))
    np.testing.assert_allclose(tour_lengths(coords, picked), expected)


def test_paired_bootstrap_interval():
    rng = np.random.default_rng(0)
    b = rng.normal(size=200)
    mean, low, high = paired_bootstrap(b + 0.5, b)  # a constant shift: no spread at all
    assert mean == pytest.approx(0.5) and low == pytest.approx(0.5) and high == pytest.approx(0.5)
    noisy = b + 0.5 + rng.normal(scale=1.0, size=200)
    mean, low, high = paired_bootstrap(noisy, b)
    assert low < mean < high and low > 0.2 and high < 0.8  # sd of the mean ≈ 0.07
    small = paired_bootstrap(noisy[:20], b[:20])
    assert small[2] - small[1] > high - low  # fewer instances, wider interval


def test_eval_numbers_match_tours_computed_independently(tmp_path, capsys):
    coords = random_instances(4, 12, seed=25)
    reference = np.stack([solve_reference(c) for c in coords])
    path = tmp_path / "twelve.txt"
    write_instances(path, coords, reference)
    out = tmp_path / "eval.json"
    plot = tmp_path / "gap.png"
    assert main(["tsp", "eval", str(path), "--baselines-only", "--restarts", "4", "--json", str(out),
                 "--plot", str(plot), "--quiet"]) == 0
    data = json.loads(out.read_text())
    rows = {r["method"]: r for r in data["rows"]}
    ref = tour_lengths(coords, reference)
    uniform = tour_lengths(coords, _uniform_two_opt(coords))
    row = rows["uniform heat-map, greedy + 2-opt"]
    assert row["mean_length"] == pytest.approx(uniform.mean())
    assert row["gap_percent"] == pytest.approx(100 * (uniform.sum() / ref.sum() - 1))
    np.testing.assert_allclose(data["per_instance_gap_percent"]["uniform heat-map, greedy + 2-opt"],
                               100 * (uniform / ref - 1), atol=1e-5)
    restarts = tour_lengths(coords, perturbed_restarts(coords, None, restarts=4, seed=0))
    assert rows["uniform heat-map, 4 restarts (σ 0.3) + 2-opt"]["mean_length"] == pytest.approx(restarts.mean())
    assert rows["elkai (LKH, 1 run)"]["gap_percent"] < 1.0
    assert plot.stat().st_size > 0


def test_single_cycle_detects_heatmaps_that_are_tours():
    from diffprior_tsp.evaluation import is_single_cycle, shared_edges

    n = 8
    tour = np.array([0, 3, 1, 6, 2, 7, 5, 4])
    A = np.full((n, n), 0.01)
    A[tour, np.roll(tour, -1)] = 1.0
    two_loops = np.full((n, n), 0.01)
    for loop in ([0, 1, 2, 3], [4, 5, 6, 7]):
        two_loops[loop, np.roll(loop, -1)] = 1.0
    np.testing.assert_array_equal(is_single_cycle(np.stack([A, two_loops, np.full((n, n), 0.1)])),
                                  [True, False, False])
    assert shared_edges(tour[None], tour[None])[0] == 1.0
    assert shared_edges(np.roll(tour[::-1], 3)[None], tour[None])[0] == 1.0  # same cycle, other start/direction
    assert shared_edges(np.arange(n)[None], tour[None])[0] < 1.0


def test_uniform_weight_orders_the_edges_the_heatmap_leaves_out_by_distance():
    # 40 cities on a circle, visited in a shuffled order: the optimal tour is the circle. The
    # heat-map knows only the first 20 circle edges and is 0 elsewhere, like an optimised heat-map.
    from diffprior_tsp.solver import decode_heatmaps, mix_uniform

    n = 40
    angle = 2 * np.pi * np.arange(n) / n
    order = np.random.default_rng(0).permutation(n)
    coords = (0.5 + 0.4 * np.stack([np.cos(angle), np.sin(angle)], 1))[order][None]
    position = np.argsort(order)  # city index of circle point k is position[k]
    adjacency = np.zeros((1, n, n))
    for k in range(20):
        adjacency[0, position[k], position[k + 1]] = 1.0
    circle = 2 * n * 0.4 * np.sin(np.pi / n)
    paper = tour_lengths(coords, decode_heatmaps(adjacency, coords))[0]
    mixed = tour_lengths(coords, decode_heatmaps(mix_uniform(adjacency, 0.1), coords))[0]
    assert mixed == pytest.approx(circle)
    assert paper > circle + 0.5  # the left-out edges fall to index order, far from the circle
    np.testing.assert_array_equal(mix_uniform(adjacency, 0.0), adjacency)
    uniform = np.full((1, n, n), 1.0 / (n - 1))
    np.testing.assert_allclose(mix_uniform(adjacency, 1.0), uniform)
    from diffprior import ConfigError
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        mix_uniform(adjacency, 1.5)


def test_uniform_weight_option_is_checked_and_recorded(tmp_path, tiny_prior_path, capsys):
    coords = random_instances(2, 7, seed=4)
    path = tmp_path / "seven.txt"
    write_instances(path, coords, np.stack([solve_reference(c) for c in coords]))
    common = ["tsp", "eval", str(path), "--checkpoint", str(tiny_prior_path), "--steps", "2", "--restarts", "2",
              "--no-lkh", "--no-matched-time", "--quiet"]
    with pytest.raises(SystemExit):
        main(common + ["--uniform-weight", "2"])
    assert "expected a number from 0 to 1, got '2'" in capsys.readouterr().err
    assert main(common + ["--uniform-weight", "0.1", "--json", str(tmp_path / "eval.json")]) == 0
    assert "decoded with uniform weight 0.1" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval.json").read_text())["uniform_weight"] == 0.1


def test_best_of_k_samples_is_compared_with_as_many_uniform_decodings(tmp_path, tiny_prior_path):
    coords = random_instances(3, 7, seed=8)
    path = tmp_path / "seven.txt"
    write_instances(path, coords, np.stack([solve_reference(c) for c in coords]))
    out = tmp_path / "eval.json"
    assert main(["tsp", "eval", str(path), "--checkpoint", str(tiny_prior_path), "--steps", "2", "--samples", "3",
                 "--restarts", "2", "--no-lkh", "--no-matched-time", "--quiet", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = {r["method"]: r for r in data["rows"]}
    greedy3 = tour_lengths(coords, perturbed_restarts(coords, None, restarts=3, seed=0, two_opt_moves=False))
    two_opt3 = tour_lengths(coords, perturbed_restarts(coords, None, restarts=3, seed=0))
    assert rows["uniform heat-map, best of 3 perturbed, greedy"]["mean_length"] == pytest.approx(greedy3.mean())
    assert rows["uniform heat-map, best of 3 perturbed + 2-opt"]["mean_length"] == pytest.approx(two_opt3.mean())
    # restart 0 is the plain decoding, so the best of 3 is never worse than one pass
    assert two_opt3.mean() <= rows["uniform heat-map, greedy + 2-opt"]["mean_length"] + 1e-12
    baselines = {(c["method"], c["baseline"]) for c in data["comparisons"]}
    assert ("diffprior, best of 3 samples, greedy + 2-opt", "uniform heat-map, best of 3 perturbed + 2-opt") in baselines
    assert ("diffprior, best of 3 samples, greedy", "uniform heat-map, best of 3 perturbed, greedy") in baselines


def test_saved_heatmaps_decode_to_the_evaluated_tours(tmp_path, tiny_prior_path, capsys):
    from diffprior_tsp.solver import decode_heatmaps, with_two_opt

    coords = random_instances(3, 7, seed=12)
    path = tmp_path / "seven.txt"
    write_instances(path, coords, np.stack([solve_reference(c) for c in coords]))
    out, saved = tmp_path / "eval.json", tmp_path / "heat.npz"
    assert main(["tsp", "eval", str(path), "--checkpoint", str(tiny_prior_path), "--steps", "3", "--samples", "2",
                 "--restarts", "2", "--no-lkh", "--no-matched-time", "--quiet", "--json", str(out),
                 "--heatmaps", str(saved)]) == 0
    heat = np.load(saved)
    assert heat["adjacency"].shape == (3, 2, 7, 7)
    np.testing.assert_array_equal(heat["index"], [0, 1, 2])
    np.testing.assert_allclose(heat["coords"], coords)
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    per_sample = [with_two_opt(coords, decode_heatmaps(heat["adjacency"][:, k], coords)) for k in range(2)]
    again = tour_lengths(coords, best_of(coords, per_sample))
    assert rows["diffprior, best of 2 samples, greedy + 2-opt"]["mean_length"] == pytest.approx(again.mean())
    assert main(["tsp", "eval", str(path), "--baselines-only", "--heatmaps", str(saved), "--quiet"]) == 2
    assert "--baselines-only skips" in capsys.readouterr().err
