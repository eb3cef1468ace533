"""Tests of the land-cover plugin: the synthetic world, the terms, the variable, files and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from diffprior import BuildContext, ConfigError, GaussianPrior, NoiseSchedule, Options, WeightedTerm, optimize
from diffprior.cli.main import main
from diffprior_landcover.files import read_images, read_label_maps, upsample, write_scenes
from diffprior_landcover.plugin import LandcoverLabelsConfig, LowresKlConfig, NmiConfig
from diffprior_landcover.terms import LocalNMI, LowresKL, coarse_distribution, nmi
from diffprior_landcover.variable import LandcoverLabels
from diffprior_landcover.world import (BUILDING, CLASSES, FOREST, GRASS, NUM_CLASSES, ROAD, WATER, coarse_map,
                                       label_map, render, scene, split_seeds)

torch.set_num_threads(1)


def onehot(labels) -> torch.Tensor:
    return F.one_hot(torch.as_tensor(labels).long(), NUM_CLASSES).permute(0, 3, 1, 2).float()


def gaussian_prior(size: int = 16) -> GaussianPrior:
    return GaussianPrior(torch.zeros(NUM_CLASSES, size, size), torch.ones(NUM_CLASSES, size, size), NoiseSchedule.named("linear", 1000))


def blocky_image(size: int = 16, seed: int = 0):
    """An image of flat colour patches (4×4 blocks, one of 5 colours each) with faint noise:
    its local colour clusters are known. Returns (image [1, 3, H, W], cluster index [H, W], colours)."""
    rng = np.random.default_rng(seed)
    colours = np.array([[0.1, 0.2, 0.8], [0.1, 0.6, 0.1], [0.9, 0.8, 0.3], [0.5, 0.5, 0.5], [0.9, 0.1, 0.1]])
    cells = rng.permutation(np.arange(16) % 5).reshape(4, 4)
    clusters = cells.repeat(size // 4, 0).repeat(size // 4, 1)
    image = colours[clusters].transpose(2, 0, 1) + rng.normal(0, 0.01, (3, size, size))
    return torch.tensor(image[None], dtype=torch.float32), clusters, colours


def nmi_term(image, window=16, stride=8, k=5):
    cfg = NmiConfig.model_construct(type="nmi", clusters=k, window=window, stride=stride, em_iterations=30)
    return LocalNMI(cfg, BuildContext(), image)


# ------------------------------------------------------------------------------ the world
def test_generator_is_deterministic_per_seed():
    a, b = scene(7), scene(7)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.coarse, b.coarse)
    assert not np.array_equal(label_map(7), label_map(8))
    assert not np.array_equal(render(a.labels, 7), render(a.labels, 8))  # colours differ per image


def test_scenes_are_realistic_label_maps():
    maps = np.stack([label_map(s) for s in range(40)])
    shares = np.bincount(maps.ravel(), minlength=NUM_CLASSES) / maps.size
    assert shares[GRASS] > 0.2 and all(shares > 0.003), dict(zip(CLASSES, shares.round(3)))
    for labels in maps:  # buildings only where there is a road; no building on water
        if (labels == BUILDING).any():
            assert (labels == ROAD).any()
    # coarse maps: majority per block, with about 10% of blocks wrong
    s = scene(3, block=8, wrong=0.0)
    hist = np.eye(NUM_CLASSES)[s.labels].reshape(8, 8, 8, 8, NUM_CLASSES).sum((1, 3))
    np.testing.assert_array_equal(s.coarse, hist.argmax(-1))
    wrong = np.mean([(coarse_map(label_map(i), i, 8, 0.1) != coarse_map(label_map(i), i, 8, 0.0)).mean() for i in range(20)])
    assert 0.05 < wrong < 0.15


def test_split_seed_ranges_are_disjoint():
    train, val, test = (set(split_seeds(s, 1000)) for s in ("train", "validation", "test"))
    assert not (train & val or train & test or val & test)


# ------------------------------------------------------------------------------ nmi
def test_nmi_is_one_for_a_relabelling_of_the_clusters_and_invariant_to_their_order():
    image, clusters, colours = blocky_image()
    term = nmi_term(image)
    # labels = a bijection of the clusters (cluster j → class perm[j]): the maximum, 1
    perm = np.array([3, 0, 5, 1, 2])
    bijective = term.log_c(onehot(perm[clusters][None]))
    assert bijective.item() == pytest.approx(1.0, abs=0.02)
    # the same image with its colours swapped between regions: the same score for the same labels
    swapped = torch.tensor(colours[np.array([2, 4, 0, 1, 3])][clusters].transpose(2, 0, 1)[None], dtype=torch.float32)
    assert nmi_term(swapped).log_c(onehot(perm[clusters][None])).item() == pytest.approx(bijective.item(), abs=1e-3)
    # permuting the clusters' order in the responsibilities changes nothing
    r = term.clusters_for(1)
    labels = torch.softmax(torch.randn(1, 4, 256, NUM_CLASSES), -1)
    torch.testing.assert_close(nmi(labels, r), nmi(labels, r[..., torch.randperm(5)]))


def test_nmi_prefers_labels_that_are_a_function_of_the_clusters():
    image, clusters, _ = blocky_image(seed=1)
    term = nmi_term(image)
    merge = np.array([0, 0, 1, 2, 2])  # a function of the clusters, not one-to-one
    exact = term.log_c(onehot(merge[clusters][None])).item()
    rng = np.random.default_rng(0)
    for fraction in (0.05, 0.2, 0.5):
        noisy = merge[clusters].copy()
        flip = rng.random(noisy.shape) < fraction
        noisy[flip] = rng.integers(0, NUM_CLASSES, flip.sum())
        assert term.log_c(onehot(noisy[None])).item() < exact - 0.02
    assert term.log_c(torch.full((1, NUM_CLASSES, 16, 16), 1 / NUM_CLASSES)).item() == pytest.approx(0, abs=1e-5)


# ------------------------------------------------------------------------------ lowres-kl
@pytest.mark.parametrize("direction", ["prior-to-labels", "labels-to-prior"])
def test_lowres_kl_is_zero_when_the_pooled_labels_equal_the_coarse_prior(direction):
    prior = torch.softmax(torch.randn(2, NUM_CLASSES, 4, 4), 1)
    cfg = LowresKlConfig.model_construct(type="lowres-kl", pool=None, pool_stride=None, direction=direction, floor=1e-6)
    term = LowresKL(cfg, BuildContext(), prior)
    x = prior.repeat_interleave(4, -1).repeat_interleave(4, -2)  # [2, K, 16, 16], pooled back = prior
    assert term.log_c(x).abs().max().item() < 1e-5
    other = torch.softmax(torch.randn(2, NUM_CLASSES, 16, 16), 1)
    assert (term.log_c(other) < -1e-3).all()


def test_coarse_distribution_uses_the_table_rows():
    table = torch.rand(NUM_CLASSES, NUM_CLASSES) + 0.1
    coarse = torch.tensor([[[0, 5], [2, 2]]])
    dist = coarse_distribution(coarse, NUM_CLASSES, table)
    torch.testing.assert_close(dist[0, :, 0, 1], table[5] / table[5].sum())
    smooth = coarse_distribution(coarse, NUM_CLASSES, None, confidence=0.7)
    assert smooth[0, 2, 1, 0].item() == pytest.approx(0.7) and smooth[0].sum(0).allclose(torch.ones(2, 2))


# ------------------------------------------------------------------------------ the variable and gradients
def test_gradients_of_both_terms_reach_the_variable_and_the_run_moves_towards_the_clusters():
    image, clusters, _ = blocky_image(seed=2)
    prior = gaussian_prior()
    truth = np.array([WATER, FOREST, GRASS, ROAD, BUILDING])[clusters]
    coarse = torch.as_tensor(truth[None, ::4, ::4].copy())
    variable = LandcoverLabels(prior, coarse=coarse, init_strength=0.0, init_noise=0.05)
    params = variable.init([torch.Generator().manual_seed(0)], "cpu").requires_grad_(True)
    nmi_t = nmi_term(image)
    kl_cfg = LowresKlConfig.model_construct(type="lowres-kl", pool=None, pool_stride=None, direction="labels-to-prior", floor=1e-3)
    kl_t = LowresKL(kl_cfg, BuildContext(), coarse_distribution(coarse, NUM_CLASSES, None, 0.9))
    for term in (nmi_t, kl_t):
        (grad,) = torch.autograd.grad(term.log_c(variable.term_view(variable.to_x(params, 0.0))).sum(), params)
        assert torch.isfinite(grad).all() and grad.abs().max() > 0
    terms = [WeightedTerm("nmi", nmi_t, 1.0), WeightedTerm("lowres-kl", kl_t, 1.0)]
    options = Options(optimizer={"lr": 0.05, "steps": 60}, timesteps=500.0, prior_weight=0.0)
    result = optimize(prior, variable, terms, [0], options)
    accuracy = (result.x.argmax(1)[0].numpy() == truth).mean()
    assert accuracy > 0.9, accuracy


def test_variable_starts_from_the_coarse_map_and_anneals_sigma():
    prior = gaussian_prior(8)
    coarse = torch.tensor([[[1, 2], [3, 4]]])
    v = LandcoverLabels(prior, coarse=coarse, init_strength=0.5, init_noise=0.0, anneal="linear")
    m = v.init([torch.Generator().manual_seed(0)], "cpu")
    assert (m[0].argmax(0) == torch.tensor(upsample(coarse[0].numpy(), 8))).all()
    assert v.sigma(0.5) == pytest.approx(0.11)
    with pytest.raises(ConfigError, match="classes"):
        LandcoverLabels(prior, coarse=torch.tensor([[[9]]]))


# ------------------------------------------------------------------------------ files and conformance
@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    scenes = [scene(s, size=64) for s in split_seeds("validation", 2)]
    write_scenes(out, scenes)
    return out, scenes


def test_files_written_by_the_generator_read_back(scene_files):
    out, scenes = scene_files
    stack = read_images(out / "scenes.safetensors")
    assert stack.shape == (2, 3, 64, 64)
    np.testing.assert_allclose(read_images(out / "0001-image.png")[0], stack[1], atol=1e-6)
    np.testing.assert_array_equal(read_label_maps(out / "0001-coarse.png")[0], scenes[1].coarse)
    np.testing.assert_array_equal(read_label_maps(out / "scenes.safetensors", "labels")[0], scenes[0].labels)
    np.save(out / "coarse.npy", scenes[0].coarse.astype(np.int32))
    np.testing.assert_array_equal(read_label_maps(out / "coarse.npy")[0], scenes[0].coarse)


def test_conformance(diffprior_conformance, scene_files):
    out, _ = scene_files
    diffprior_conformance.check_plugin("diffprior-landcover", expect={"term": ["nmi", "lowres-kl"],
                                                                      "variable": ["landcover-labels"],
                                                                      "command": ["landcover"]})
    diffprior_conformance.check_lazy_import("diffprior_landcover.plugin")
    x = torch.softmax(3 * torch.randn(3, NUM_CLASSES, 64, 64), 1)
    prior = gaussian_prior(64)
    diffprior_conformance.check_term(NmiConfig, {"image": str(out / "0000-image.png"), "stride": 16}, prior=prior, x=x)
    diffprior_conformance.check_term(LowresKlConfig, {"coarse": str(out / "0000-coarse.png"), "table": "synthetic-world"},
                                     prior=prior, x=x)
    diffprior_conformance.check_variable(LandcoverLabelsConfig, {"coarse": str(out / "0000-coarse.png")}, prior=prior)


def test_bad_inputs_are_reported(scene_files, tmp_path):
    out, _ = scene_files
    ctx = BuildContext(prior=gaussian_prior(64))
    np.save(tmp_path / "bad.npy", np.full((4, 4), 7))
    with pytest.raises(ConfigError, match="class indices span 7..7"):
        LowresKlConfig(coarse=str(tmp_path / "bad.npy")).build(ctx)
    with pytest.raises(ConfigError, match="index = 5 but .* holds 2"):
        NmiConfig(image=str(out / "scenes.safetensors"), index=5).build(ctx)
    with pytest.raises(ValueError, match="either index"):
        NmiConfig(image=str(out / "scenes.safetensors"), index=1, start=1)


def test_data_command_writes_viewable_files(tmp_path, capsys):
    assert main(["landcover", "data", "--count", "2", "--out", str(tmp_path), "--block", "8"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert {"0000-image.png", "0000-labels.png", "0001-coarse.png", "scenes.safetensors", "preview.png"} <= set(names)
    assert read_label_maps(tmp_path / "0000-coarse.png").shape == (1, 8, 8)
    assert main(["landcover", "data", "--count", "2", "--out", str(tmp_path), "--block", "7"]) == 2
    assert "does not divide" in capsys.readouterr().err
