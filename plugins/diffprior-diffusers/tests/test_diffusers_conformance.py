"""diffprior's conformance kit on diffprior-diffusers."""

from diffprior.testing import check_lazy_import, check_plugin, check_prior

from diffprior_diffusers.plugin import DiffusersPriorConfig

from tiny_models import save_pipeline


def test_hook_module_imports_no_torch_and_no_diffusers():
    check_lazy_import("diffprior_diffusers.plugin", forbidden=("torch", "timm", "diffusers", "huggingface_hub"))


def test_plugin_loads_strictly():
    check_plugin("diffprior-diffusers", expect={"prior": ["diffusers", "guided-diffusion"],
                                                "command": ["convert", "prior-info"]})


def test_a_diffusers_prior_conforms(tmp_path):
    folder = save_pipeline(tmp_path / "p")
    prior = check_prior(DiffusersPriorConfig, {"model": str(folder)})
    assert prior.shape == (3, 8, 8)
