"""diffprior-edges: the conformance kit's checks plus what the terms compute."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from diffprior import BuildContext, ConfigError
from diffprior import validate_config
from diffprior_edges.plugin import EdgesConfig, TotalVariationConfig


def build(config_cls, shape=(1, 16, 16), **params):
    from diffprior.testing import default_prior

    prior = default_prior(shape)
    return config_cls(**params).build(BuildContext(prior=prior))


# ----------------------------------------------------------------------------- conformance
@pytest.mark.parametrize("params", [{}, {"norm": "anisotropic", "epsilon": 0.1}])
def test_tv_conforms(diffprior_conformance, params):
    diffprior_conformance.check_term(TotalVariationConfig, params, prior=(3, 12, 10))


@pytest.mark.parametrize("target", ["circle", "square", "diamond"])
def test_edges_conforms_with_builtin_outlines(diffprior_conformance, target):
    diffprior_conformance.check_term(EdgesConfig, {"target": target, "width": 1.5}, prior=(2, 16, 12))


@pytest.mark.parametrize("key", ["edges", "image"])
def test_edges_conforms_with_a_target_file(diffprior_conformance, tmp_path, key):
    from safetensors.torch import save_file

    tensor = torch.zeros(16, 16)
    tensor[4:12, 4:12] = 1.0
    save_file({key: tensor}, str(tmp_path / "target.safetensors"))
    report = diffprior_conformance.check_term(EdgesConfig, {"target": "target.safetensors"}, base_dir=tmp_path)
    assert report.term.edges.max() == 1.0


def test_plugin_registers_both_terms_and_loads_strictly(diffprior_conformance):
    info = diffprior_conformance.check_plugin("diffprior-edges", expect={"term": ["tv", "edges"]})
    assert not info.first_party


def test_hook_module_does_not_import_torch(diffprior_conformance):
    diffprior_conformance.check_lazy_import("diffprior_edges.plugin")


# ----------------------------------------------------------------------------- behaviour
def test_anisotropic_tv_of_a_step_is_its_height_times_its_length():
    term = build(TotalVariationConfig, norm="anisotropic", epsilon=1e-4)
    x = torch.zeros(2, 1, 16, 16)
    x[0, :, :, 8:] = 0.5  # one vertical step of height 0.5, 16 pixels long
    x[1, :, 5:, :] = -1.0  # one horizontal step of height 1, 16 pixels long
    assert torch.allclose(-term.log_c(x), torch.tensor([0.5 * 16, 1.0 * 16]), atol=1e-2)


def test_tv_prefers_smooth_images_to_noise():
    term = build(TotalVariationConfig)
    ramp = torch.linspace(-1, 1, 16).expand(1, 1, 16, 16)
    noise = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert term.log_c(ramp) > term.log_c(noise)


def test_a_filled_disk_aligns_with_the_circle_outline_and_noise_does_not():
    term = build(EdgesConfig, shape=(1, 32, 32), target="circle", size=0.3)
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    disk = ((((xs - 15.5) ** 2 + (ys - 15.5) ** 2).sqrt() < 0.3 * 32).float() * 2 - 1).expand(1, 1, 32, 32)
    noise = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    aligned, unaligned = term.metrics(disk)["edge_correlation"], term.metrics(noise)["edge_correlation"]
    assert aligned > 0.5 and unaligned.abs() < 0.2


def test_optimising_with_edges_raises_the_correlation():
    from diffprior.runs import runner

    base = {
        "batch": 2,
        "prior": {"type": "gaussian", "shape": [1, 16, 16], "mean": 0.0, "var": 0.25},
        "optimizer": {"type": "adam", "lr": 0.05, "steps": 60},
        "timesteps": {"type": "linear", "start": 400, "end": 20},
    }
    with_edges = validate_config({**base, "terms": [{"type": "edges", "target": "square"}]})
    without = validate_config({**base, "terms": [{"type": "edges", "target": "square", "weight": 0}]})
    guided = runner.run(with_edges, progress=False).metrics["edges.edge_correlation"]
    free = runner.run(without, progress=False).metrics["edges.edge_correlation"]
    assert (guided > 0.5).all() and (guided > free + 0.3).all()


# ----------------------------------------------------------------------------- bad input
def test_an_unknown_outline_names_the_choices():
    with pytest.raises(ValidationError, match="circle, square, diamond"):
        EdgesConfig(target="triangle")


def test_a_missing_target_file_is_reported(tmp_path):
    with pytest.raises(ValidationError, match="file not found"):
        EdgesConfig.model_validate({"target": "nowhere.safetensors"}, context={"base_dir": tmp_path})


def test_a_target_of_the_wrong_size_is_a_config_error(tmp_path):
    from safetensors.torch import save_file

    save_file({"edges": torch.ones(8, 8)}, str(tmp_path / "small.safetensors"))
    with pytest.raises(ConfigError, match="16×16"):
        build(EdgesConfig, target=tmp_path / "small.safetensors")


def test_terms_need_image_shaped_priors():
    with pytest.raises(ConfigError, match=r"\(C, H, W\)"):
        build(TotalVariationConfig, shape=(16,))
