"""diffprior's conformance kit on every term of the plugin (32×32 digit-shaped images)."""

import pytest

from diffprior.testing import check_config, check_lazy_import, check_plugin, check_term
from diffprior_images.plugin import (
    ClassifierConfig,
    IntensityConfig,
    MaskConfig,
    SegmentationConfig,
    SymmetryConfig,
)

CASES = [
    (SymmetryConfig, {"axis": "horizontal"}),
    (IntensityConfig, {"mode": "thick"}),
    (IntensityConfig, {"mode": "thin", "level": 0.9}),  # uniform draws have mean ink 0.5 < 0.9: zero gradient
    (ClassifierConfig, {"model": "digits", "target": 3}),
    (MaskConfig, {"image": {"split": "heldout", "index": 3}, "region": "border"}),
    (SegmentationConfig, {"labels": {"split": "heldout", "index": 3}}),
]


@pytest.mark.parametrize("config_cls, params", CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_term_conformance(config_cls, params):
    check_config(config_cls, params)
    check_term(config_cls, params, prior=(1, 32, 32), allow_zero_grad=params.get("level") is not None)


def test_hook_module_imports_no_torch():
    check_lazy_import("diffprior_images.plugin")


def test_plugin_loads_strictly():
    check_plugin("diffprior-images", expect={"term": ["symmetry", "intensity", "classifier", "mask", "segmentation"],
                                              "command": ["train-classifier"]})
