"""The core's own built-ins pass the same conformance kit as any plugin."""

import pytest

from diffprior.plugins.builtins import BoundedPixelsConfig, GaussianPriorConfig, MatchConfig, PixelsConfig, SimplexLabelsConfig
from diffprior.testing import check_config, check_lazy_import, check_plugin, check_prior, check_term, check_variable


def test_match_term():
    check_config(MatchConfig, {"target": 0.3})
    check_term(MatchConfig, {"target": 0.3, "noise": 0.5}, prior=(1, 8, 8))


def test_gaussian_prior():
    check_prior(GaussianPriorConfig, {"shape": [1, 8, 8], "mean": 0.2, "var": 0.5})


@pytest.mark.parametrize("config_cls", [PixelsConfig, BoundedPixelsConfig])
def test_pixel_variables(config_cls):
    check_variable(config_cls, {}, prior=GaussianPriorConfig(shape=[1, 8, 8]))


def test_simplex_labels():
    check_variable(SimplexLabelsConfig, {}, prior=GaussianPriorConfig(shape=[4, 8, 8]))


def test_builtins_import_no_torch_and_load_strictly():
    check_lazy_import("diffprior.plugins.builtins")
    check_plugin("diffprior", expect={"prior": ["gaussian"], "term": ["match"], "variable": ["pixels"]})
