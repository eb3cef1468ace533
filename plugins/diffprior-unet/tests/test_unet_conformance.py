"""diffprior's conformance kit on the unet prior and the plugin as a whole."""

from diffprior.testing import check_config, check_lazy_import, check_plugin, check_prior
from diffprior_unet.plugin import UNetPriorConfig


def test_bundled_prior_conforms():
    check_config(UNetPriorConfig, {"checkpoint": "digits"})
    prior = check_prior(UNetPriorConfig, {"checkpoint": "digits"})
    assert prior.shape == (1, 32, 32)


def test_hook_module_imports_no_torch():
    check_lazy_import("diffprior_unet.plugin")


def test_plugin_loads_strictly():
    check_plugin("diffprior-unet", expect={"prior": ["unet"], "command": ["train-prior", "sample"]})
