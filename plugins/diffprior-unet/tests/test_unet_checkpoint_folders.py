"""Checkpoints bundled by other distributions are addressed by name, like the U-Net's own."""

import sys

import pytest
import torch
from diffprior import NoiseSchedule
from diffprior import validate_config

from diffprior_unet.checkpoints import CHECKPOINT_FOLDERS_GROUP, bundled_names, load_prior, resolve_checkpoint, save_checkpoint
from diffprior_unet.model import UNet

from unet_tiny_arch import TINY


def _install_distribution(site, package: str, checkpoint: str) -> None:
    """A real (unzipped) distribution on sys.path: a package with weights/NAME.safetensors + .json
    and a dist-info whose entry point declares the folder, as diffprior-tsp's pyproject does."""
    weights = site / package / "weights"
    weights.mkdir(parents=True)
    (site / package / "__init__.py").write_text("")
    torch.manual_seed(0)
    save_checkpoint(UNet(TINY).eval(), weights / checkpoint, noise=NoiseSchedule.linear(50), dtype="float32")
    info = site / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{CHECKPOINT_FOLDERS_GROUP}]\nweights = {package}.weights\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [m for m in sys.modules if m.startswith("ckpt_dist")]:
        del sys.modules[name]


def test_a_checkpoint_another_distribution_bundles_is_found_by_name(site, tmp_path):
    assert "tiny-elsewhere" not in bundled_names()
    _install_distribution(site, "ckpt_dist_a", "tiny-elsewhere")
    assert "tiny-elsewhere" in bundled_names()
    path = resolve_checkpoint("tiny-elsewhere")
    assert path == site / "ckpt_dist_a" / "weights" / "tiny-elsewhere.safetensors"
    assert load_prior("tiny-elsewhere").shape == (1, 8, 8)
    # and a config anywhere can name it
    config = validate_config({"prior": {"type": "unet", "checkpoint": "tiny-elsewhere"}}, base_dir=tmp_path)
    assert config.prior.checkpoint == str(path)


def test_the_unets_own_checkpoint_wins_a_name_another_distribution_also_bundles(site):
    _install_distribution(site, "ckpt_dist_b", "digits")
    assert resolve_checkpoint("digits").parent.parent.name == "diffprior_unet"


def test_the_tsp_and_landcover_priors_are_bundled_names():
    pytest.importorskip("diffprior_tsp")
    pytest.importorskip("diffprior_landcover")
    assert {"tsp50", "landcover"} <= set(bundled_names())
    assert len(load_prior("tsp50").shape) == 3
    assert resolve_checkpoint("landcover").name == "landcover.safetensors"
