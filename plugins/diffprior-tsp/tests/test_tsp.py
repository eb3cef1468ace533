"""Tests of the TSP plugin: I/O, rasteriser, variable, decoding, 2-opt, errors and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffprior import ConfigError
from diffprior.cli.main import main
from diffprior_tsp.decode import (edge_scores, greedy_edge_tours, nearest_neighbour_tours, reference_two_opt,
                                  two_opt)
from diffprior_tsp.instances import (InstanceError, format_instance, is_tour, random_instances,
                                     read_instances, solve_reference, tour_lengths, write_instances)
from diffprior_tsp.raster import city_pixels, render_tours
from diffprior_tsp.solver import decode_heatmaps, load_tsp_prior, mark_checkpoint, optimise_heatmaps
from diffprior_tsp.variable import TspEdges

torch.set_num_threads(1)


def random_tours(count: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(count)])


# ------------------------------------------------------------------------------ I/O
def test_instances_round_trip(tmp_path):
    coords = random_instances(5, 12, seed=3)
    tours = random_tours(5, 12, seed=4)
    path = tmp_path / "instances.txt"
    write_instances(path, coords, tours)
    back = read_instances(path)
    np.testing.assert_array_equal(back.coords, coords)
    np.testing.assert_array_equal(back.tours, tours)
    line = path.read_text().splitlines()[0].split()
    assert line[24] == "output" and line[25] == line[-1] == str(tours[0, 0] + 1)  # 1-based, first city repeated
    assert len(read_instances(path, limit=2)) == 2


def test_reference_solver_is_no_worse_than_two_opt():
    coords = random_instances(3, 20, seed=5)
    lkh = np.stack([solve_reference(c) for c in coords])
    assert all(is_tour(t, 20) for t in lkh)
    local = two_opt(coords, nearest_neighbour_tours(coords))[0]
    assert (tour_lengths(coords, lkh) <= tour_lengths(coords, local) + 1e-9).all()


@pytest.mark.parametrize("line, message", [
    ("0.1 0.2 0.3 0.4 0.5 0.6 0.7", "coordinate values"),
    ("0.1 0.2 0.3 0.4 0.5 abc 0.7 0.8", "not a number"),
    ("0.1 0.2 0.3 0.4 0.5 0.6 0.1 0.2", "cities 1 and 4 are duplicates"),
    ("0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 output 1 2 3 4", "expected 5"),
    ("0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 output 1 2 2 4 1", "exactly once"),
    ("0.1 0.2 0.3 0.4 0.5 1.6 0.7 0.8", "unit square"),
])
def test_malformed_lines_name_the_line(tmp_path, line, message):
    path = tmp_path / "bad.txt"
    good = format_instance(random_instances(1, 4, seed=0)[0])
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(InstanceError, match=message) as info:
        read_instances(path)
    assert f"{path}:2" in str(info.value)


def test_mixed_sizes_are_rejected(tmp_path):
    path = tmp_path / "mixed.txt"
    write_instances(path, random_instances(1, 5, seed=0))
    with path.open("a") as fh:
        fh.write(format_instance(random_instances(1, 6, seed=1)[0]) + "\n")
    with pytest.raises(InstanceError, match="6 cities, but the first instance has 5"):
        read_instances(path)


# ------------------------------------------------------------------------------ rasteriser
def test_rendered_tour_image_follows_the_recipe():
    coords = random_instances(2, 10, seed=1)
    tours = random_tours(2, 10, seed=2)
    image = render_tours(coords, tours)
    assert image.shape == (2, 1, 64, 64)
    assert set(image.unique().tolist()) <= {-1.0, 0.0, 1.0}
    pixels = city_pixels(torch.as_tensor(coords)).long()
    for b in range(2):
        assert (image[b, 0, pixels[b, :, 0], pixels[b, :, 1]] == 1).all()  # cities at 63·(y, x)
        # the midpoint of every tour edge is on the line (0) unless a city disc covers it
        a, c = pixels[b, tours[b]], pixels[b, np.roll(tours[b], -1)]
        mid = ((a + c).double() / 2).round().long()
        assert (image[b, 0, mid[:, 0], mid[:, 1]] >= 0).all()
    assert (image == -1).float().mean() > 0.5  # mostly background


def test_rasteriser_pixel_convention():
    coords = np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.5]]])
    assert city_pixels(torch.as_tensor(coords))[0].tolist() == [[0, 0], [0, 63], [63, 63], [31, 0]]


# ------------------------------------------------------------------------------ the variable
class FlatPrior:
    """Just what the variable needs from a prior: a 64×64 one-channel sample shape."""

    shape = (1, 64, 64)
    data_range = (-1.0, 1.0)
    device = torch.device("cpu")


def test_hard_successors_reproduce_the_training_image():
    coords = random_instances(3, 15, seed=7)
    tours = np.stack([solve_reference(c) for c in coords])  # near-optimal tours barely overlap
    L = torch.full((3, 15, 15), 500.0)
    for b in range(3):
        L[b, tours[b], np.roll(tours[b], -1)] = -500.0  # successor of each city
    x = TspEdges(FlatPrior(), coords).to_x(L, 0.0)
    target = render_tours(coords, tours)
    # only pixels where two tour edges overlap differ (drawn twice: 2·(1 − 0.5) = 1)
    assert (x != target).float().mean() < 0.005
    assert ((x - target).abs() < 1e-5).logical_or(x == 1).all()


def test_variable_gradients_and_per_sample_independence():
    coords = random_instances(3, 10, seed=9)
    variable = TspEdges(FlatPrior(), coords)
    params = variable.init([torch.Generator().manual_seed(s) for s in range(3)], "cpu").requires_grad_(True)
    x = variable.to_x(params, 0.0)
    assert x.shape == (3, 1, 64, 64) and torch.isfinite(x).all()
    (grad,) = torch.autograd.grad(x[0].pow(2).sum(), params)
    assert grad[0].abs().sum() > 0 and torch.isfinite(grad).all()
    assert grad[1:].abs().sum() == 0  # sample 0's image does not depend on the others' logits
    # and each sample is the same as when rendered alone
    alone = TspEdges(FlatPrior(), coords[2:3]).to_x(params[2:3].detach(), 0.0)
    torch.testing.assert_close(alone, x[2:3].detach())


def test_variable_refuses_non_image_priors():
    class VectorPrior(FlatPrior):
        shape = (3, 64, 64)

    with pytest.raises(ConfigError, match="one-channel square image prior"):
        TspEdges(VectorPrior(), random_instances(1, 5, seed=0))


# ------------------------------------------------------------------------------ decoding
def test_greedy_decoding_gives_valid_tours():
    coords = random_instances(16, 12, seed=10)
    heat = torch.rand(16, 12, 12, generator=torch.Generator().manual_seed(0)).numpy()
    tours = greedy_edge_tours(edge_scores(heat, coords))
    assert all(is_tour(t, 12) for t in tours)
    assert all(is_tour(t, 12) for t in nearest_neighbour_tours(coords))


def test_greedy_decoding_follows_a_dominant_heatmap():
    coords = random_instances(2, 9, seed=11)
    tours = random_tours(2, 9, seed=12)
    heat = np.full((2, 9, 9), 1e-3)
    for b in range(2):
        heat[b, tours[b], np.roll(tours[b], -1)] = 100.0
    decoded = decode_heatmaps(heat, coords)
    np.testing.assert_allclose(tour_lengths(coords, decoded), tour_lengths(coords, tours))


def test_two_opt_matches_the_naive_reference_and_never_lengthens():
    coords = random_instances(12, 9, seed=13)
    start = random_tours(12, 9, seed=14)
    fast, moves = two_opt(coords, start)
    assert moves.dtype == np.int64  # a count of moves per instance
    before, after = tour_lengths(coords, start), tour_lengths(coords, fast)
    assert (after <= before + 1e-12).all() and (moves > 0).any()
    for b in range(12):
        assert fast[b].tolist() == reference_two_opt(coords[b], start[b]).tolist()
    # a 2-opt local optimum stays put
    again, moves = two_opt(coords, fast)
    assert (moves == 0).all() and (again == fast).all()
    # cities on a line at integer positions: lengths are exact and many moves change nothing;
    # neither 2-opt takes such a move (they would cycle), and both end on the optimum, 2·(max − min)
    line = np.stack([np.array([0.0, 3, 1, 4, 2, 6, 5, 7]), np.zeros(8)], 1)
    order = np.array([5, 0, 7, 2, 4, 1, 6, 3])
    fast, _ = two_opt(line[None], order[None])
    assert fast[0].tolist() == reference_two_opt(line, order).tolist()
    assert tour_lengths(line[None], fast)[0] == 14.0


# ------------------------------------------------------------------------------ prior, solver and CLI
@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory):
    """An untrained 16×16 U-Net checkpoint marked as a 6-city tour prior."""
    from diffprior import NoiseSchedule
    from diffprior_unet.checkpoints import save_checkpoint
    from diffprior_unet.config import UNetArchitecture
    from diffprior_unet.model import UNet

    torch.manual_seed(0)
    arch = UNetArchitecture(image_size=16, channels=8, channel_mult=[1, 2], attention_resolutions=[], dropout=0.0)
    path = save_checkpoint(UNet(arch), tmp_path_factory.mktemp("prior") / "tiny", noise=NoiseSchedule.linear(100))
    return mark_checkpoint(path, cities=6)


def test_batched_solve_equals_one_at_a_time(tiny_prior, tmp_path):
    prior = load_tsp_prior(tiny_prior, cities=6)
    coords = random_instances(3, 6, seed=15)
    write_instances(tmp_path / "six.txt", coords)
    settings = ["optimizer.steps=4", "gradient=full"]
    together = optimise_heatmaps(prior, tmp_path / "six.txt", [*settings, "batch_size=3"], progress=False)
    alone = optimise_heatmaps(prior, tmp_path / "six.txt", [*settings, "batch_size=1"], start=2, count=1, seed=2,
                              progress=False)
    np.testing.assert_allclose(together.adjacency[2:], alone.adjacency, rtol=1e-4, atol=1e-6)
    tours = decode_heatmaps(together.adjacency, coords)
    assert all(is_tour(t, 6) for t in tours)


def test_size_mismatch_is_a_clear_error(tiny_prior, tmp_path, capsys):
    with pytest.raises(ConfigError, match="7 cities but the prior tiny.safetensors was trained on 6-city tours"):
        load_tsp_prior(tiny_prior, cities=7)
    path = tmp_path / "seven.txt"
    write_instances(path, random_instances(2, 7, seed=0))
    assert main(["tsp", "solve", str(path), "--checkpoint", str(tiny_prior), "--quiet"]) == 2
    assert "trained on 6-city tours" in capsys.readouterr().err


def test_cli_solve_and_eval(tiny_prior, tmp_path, capsys):
    coords = random_instances(3, 6, seed=16)
    path = tmp_path / "six.txt"
    write_instances(path, coords, [solve_reference(c) for c in coords])
    out = tmp_path / "tours.txt"
    common = ["--checkpoint", str(tiny_prior), "--steps", "3", "--quiet"]
    assert main(["tsp", "solve", str(path), "--out", str(out), *common]) == 0
    solved = read_instances(out)
    np.testing.assert_array_equal(solved.coords, coords)
    assert all(is_tour(t, 6) for t in solved.tours)

    pictures = tmp_path / "pictures"
    assert main(["tsp", "eval", str(path), "--limit", "2", "--pictures", str(pictures), "--pictures-count", "1",
                 *common]) == 0
    table = capsys.readouterr().out
    for row in ("diffprior, greedy + 2-opt", "uniform heat-map, greedy + 2-opt", "nearest neighbour + 2-opt", "elkai"):
        assert row in table
    assert "2 instances" in table and (pictures / "instance-0000.png").stat().st_size > 0


def test_cli_rejects_bad_files(tmp_path, capsys):
    path = tmp_path / "bad.txt"
    path.write_text("0.1 0.2 0.3\n")
    assert main(["tsp", "eval", str(path)]) == 2
    assert "bad.txt:1" in capsys.readouterr().err
    assert main(["tsp", "solve", str(tmp_path / "missing.txt")]) == 2


def test_run_config_with_the_tsp_edges_variable(tmp_path):
    from diffprior import load_config
    from diffprior import run

    coords = random_instances(3, 8, seed=17)
    write_instances(tmp_path / "cities.txt", coords)
    config_path = tmp_path / "tsp.toml"
    config_path.write_text(
        'batch = 2\n[prior]\ntype = "gaussian"\nshape = [1, 64, 64]\nmean = -0.8\nvar = 0.1\n'
        '[variable]\ntype = "tsp-edges"\ninstances = "cities.txt"\nstart = 1\n'
        '[optimizer]\ntype = "adam"\nlr = 1.0\nbetas = [0.0, 0.9]\nsteps = 3\n'
    )
    result = run(load_config(config_path), None, progress=False)
    assert result.x.shape == (2, 1, 64, 64)
    city = render_tours(coords[1:3], np.tile(np.arange(8), (2, 1))) == 1
    assert (result.x[city] == 1).all()  # samples 0, 1 carry the cities of instances 1, 2

    config_path.write_text(config_path.read_text().replace("batch = 2", "batch = 3"))
    with pytest.raises(ConfigError, match="holds 3 instances; samples need instances 1..3"):
        run(load_config(config_path), None, progress=False)


def _tiny_run_config(tmp_path, tiny_prior, instances, batch):
    config = tmp_path / "tiny-tsp.toml"
    config.write_text(
        f'batch = {batch}\n[prior]\ntype = "unet"\ncheckpoint = "{tiny_prior}"\n'
        f'[variable]\ntype = "tsp-edges"\ninstances = "{instances}"\n'
        '[optimizer]\ntype = "adam"\nlr = 1.0\nbetas = [0.0, 0.9]\nsteps = 3\n'
        '[timesteps]\ntype = "cosine-linear"\nhigh = 100\nlow = 0\namplitude = 0.3333333333333333\nperiod = 50\n')
    return config


def test_diffprior_run_writes_the_tours_tsp_solve_finds(tiny_prior, tmp_path, capsys):
    """The run lifecycle: `diffprior run` of the recipe decodes its own heat-maps into the same
    tours as `tsp solve` (one recipe, one path), and reports gaps against the file's tours."""
    import json

    coords = random_instances(3, 6, seed=21)
    path = tmp_path / "six.txt"
    write_instances(path, coords, [solve_reference(c) for c in coords])
    config = _tiny_run_config(tmp_path, tiny_prior, path, batch=3)
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "variable: instances 3, mean_length" in printed and "gap_percent" in printed
    run_tours = read_instances(tmp_path / "run" / "tours.txt")
    assert main(["tsp", "solve", str(path), "--checkpoint", str(tiny_prior), "--steps", "3", "--quiet",
                 "--out", str(tmp_path / "solved.txt")]) == 0
    np.testing.assert_array_equal(run_tours.tours, read_instances(tmp_path / "solved.txt").tours)
    np.testing.assert_array_equal(run_tours.coords, coords)
    report = json.loads((tmp_path / "run" / "tours.json").read_text())
    lengths = tour_lengths(coords, run_tours.tours)
    reference = tour_lengths(coords, read_instances(path).tours)
    assert report["mean_length"] == pytest.approx(lengths.mean())
    assert report["gap_percent"] == pytest.approx(100 * (lengths.sum() / reference.sum() - 1))
    assert report["per_instance"]["instance"] == [0, 1, 2]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["outputs"]["variable"]["gap_percent"] == report["gap_percent"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert {"tours.txt", "tours.json", "tours.png"} <= set(manifest["files"])
    assert (tmp_path / "run" / "tours.png").read_bytes()[:4] == b"\x89PNG"


def test_overwriting_a_tsp_run_removes_its_tours(tiny_prior, tmp_path):
    """A run overwritten by one that writes no tours leaves no stale tours behind."""
    coords = random_instances(2, 6, seed=22)
    write_instances(tmp_path / "six.txt", coords)
    out = tmp_path / "run"
    assert main(["run", str(_tiny_run_config(tmp_path, tiny_prior, tmp_path / "six.txt", 2)), "--out", str(out),
                 "--quiet"]) == 0
    assert (out / "tours.txt").exists()
    plain = tmp_path / "plain.toml"
    plain.write_text('batch = 1\n[prior]\ntype = "gaussian"\nshape = [1, 4, 4]\n[optimizer]\nsteps = 2\n')
    assert main(["run", str(plain), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert not (out / "tours.txt").exists() and not (out / "tours.png").exists()
    assert (out / "samples.safetensors").exists()


def test_merged_shards_write_the_whole_runs_tours(tiny_prior, tmp_path):
    coords = random_instances(4, 6, seed=23)
    write_instances(tmp_path / "six.txt", coords)
    config = _tiny_run_config(tmp_path, tiny_prior, tmp_path / "six.txt", 4)
    assert main(["run", str(config), "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    for i in (0, 1):
        assert main(["run", str(config), "--batch-size", "2", "--shard", f"{i}/2", "--out", str(tmp_path / f"part{i}"),
                     "--quiet"]) == 0
    part = read_instances(tmp_path / "part1" / "tours.txt")  # a shard decodes its own instances
    np.testing.assert_array_equal(part.coords, coords[2:])
    assert main(["merge", str(tmp_path / "part0"), str(tmp_path / "part1"), "--out", str(tmp_path / "merged")]) == 0
    merged, whole = read_instances(tmp_path / "merged" / "tours.txt"), read_instances(tmp_path / "whole" / "tours.txt")
    np.testing.assert_array_equal(merged.coords, coords)
    np.testing.assert_array_equal(merged.tours, whole.tours)


def test_every_optimizer_key_reaches_tsp_solve():
    """--set goes to the recipe's run config: under the bundled prior, a learning rate of 1e-9
    leaves the heat-map where it started, the recipe's one moves it; an unknown key is refused."""
    from pathlib import Path

    from diffprior_tsp.solver import optimise_heatmaps

    sample = Path(__file__).parents[1] / "examples" / "tsp50_sample.txt"
    prior = load_tsp_prior(None, cities=50)

    def heatmap(*sets):
        return optimise_heatmaps(prior, sample, sets, count=1, progress=False)

    still, moved, start = heatmap("optimizer.steps=2", "optimizer.lr=1e-9"), heatmap("optimizer.steps=2"), \
        heatmap("optimizer.steps=1", "optimizer.lr=1e-9")
    np.testing.assert_allclose(still.adjacency, start.adjacency, atol=1e-6)
    assert np.abs(moved.adjacency - still.adjacency).max() > 1e-3
    assert still.extra["settings"]["lr"] == 1e-9 and moved.extra["settings"]["lr"] == 1.0
    with pytest.raises(ConfigError, match="nonsense"):
        heatmap("optimizer.nonsense=1")


def test_the_example_config_is_the_packaged_recipe():
    """examples/tsp.toml is recipe.toml with an instance file: the paper's recipe is written once."""
    import tomllib
    from pathlib import Path

    from diffprior_tsp.solver import RECIPE

    example = tomllib.loads((Path(__file__).parents[3] / "examples" / "tsp.toml").read_text())
    recipe = tomllib.loads(RECIPE.read_text())
    for data in (example, recipe):
        data.pop("batch")
        data["variable"].pop("instances", None)
    assert example == recipe


# ------------------------------------------------------------------------------ conformance kit
def test_plugin_conformance(diffprior_conformance):
    diffprior_conformance.check_plugin("diffprior-tsp", expect={"variable": ["tsp-edges"], "command": ["tsp"]})
    diffprior_conformance.check_lazy_import("diffprior_tsp.plugin")


def test_variable_conformance(diffprior_conformance):
    from diffprior.testing import default_prior

    prior = default_prior((1, 64, 64))
    # one instance shared by every sample (restarts), as the kit compares rows with samples alone
    diffprior_conformance.check_variable(TspEdges(prior, random_instances(1, 8, seed=18)), prior=prior, batch=3)


def test_unmarked_checkpoints_are_refused(tiny_prior, tmp_path):
    import json
    import shutil

    plain = tmp_path / "plain.safetensors"
    shutil.copyfile(tiny_prior, plain)
    meta = json.loads(tiny_prior.with_suffix(".json").read_text())
    meta.pop("tsp")
    plain.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="not marked as a tour-image prior"):
        load_tsp_prior(plain, cities=6)
    with pytest.raises(ConfigError, match="not found"):
        load_tsp_prior(tmp_path / "missing.safetensors", cities=6)
