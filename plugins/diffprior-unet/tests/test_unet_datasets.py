"""Training data by dataset name: a plugin registers a dataset, the U-Net trains on it without
importing the plugin that supplies it."""

import types

import pytest
import torch
from diffprior import ConfigError, Dataset, hookimpl, load_dataset, register_plugin, unregister_plugin

from diffprior_unet.data_sources import load_training_data
from diffprior_unet.training import DataConfig


def _stripes(split: str):
    n = {"train": 6, "test": 2}[split]
    images = -torch.ones(n, 1, 6, 6)
    images[:, :, :, ::2] = 1.0
    return images, torch.arange(n)


@pytest.fixture
def stripes_plugin():
    module = types.SimpleNamespace()

    @hookimpl
    def register_datasets(register):
        register(Dataset("stripes", "vertical stripes", _stripes, splits=("train", "test")))

    module.register_datasets = register_datasets
    register_plugin(module, "stripes-data")
    yield
    unregister_plugin("stripes-data")


def _data(**fields):
    return DataConfig.model_validate(fields, context={"base_dir": "."})


def test_a_registered_dataset_is_training_data_by_name(stripes_plugin):
    images = load_training_data(_data(source="dataset", dataset="stripes", split="test"), 8, 1)
    assert images.shape == (2, 1, 8, 8)
    assert torch.equal(images[:, :, 1:7, 1:7], _stripes("test")[0])  # padded from 6 to 8 with -1
    assert (images[:, :, 0] == -1).all()


def test_an_unknown_split_or_dataset_is_one_clear_error(stripes_plugin):
    with pytest.raises(ConfigError, match=r"no split 'val'.*\['train', 'test'\]"):
        load_dataset("stripes", "val")
    with pytest.raises(ConfigError, match="unknown dataset type 'stripe'.*stripes"):
        load_training_data(_data(source="dataset", dataset="stripe"), 8, 1)


def test_bundled_digits_is_the_digits_dataset():
    """The bundled recipe's default source reads diffprior-images' dataset through the registry."""
    bundled = load_training_data(_data(source="bundled-digits", split="heldout"), 32, 1)
    named = load_training_data(_data(source="dataset", dataset="digits", split="heldout"), 32, 1)
    assert bundled.shape == (500, 1, 32, 32) and torch.equal(bundled, named)
