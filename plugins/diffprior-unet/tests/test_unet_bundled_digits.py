"""The shipped digits prior has real weights: it predicts the noise in real held-out digits."""

import pytest
import torch
from diffprior import load_dataset

from diffprior_unet.checkpoints import bundled_names, load_prior


def test_digits_is_bundled():
    assert "digits" in bundled_names()


@pytest.mark.parametrize("t", [50, 200, 500, 800])
def test_bundled_prior_predicts_noise_far_better_than_the_trivial_predictor(t):
    prior = load_prior("digits")
    assert prior.shape == (1, 32, 32) and prior.T == 1000 and prior.noise.name == "linear"
    x0, _ = load_dataset("digits", "heldout")  # never seen in training (28×28)
    x0 = torch.nn.functional.pad(x0, (2, 2, 2, 2), value=-1.0)  # padded to 32 as in training
    x0 = x0[::5]  # 100 digits, every class
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
    tt = torch.full((len(x0),), t, dtype=torch.long)
    with torch.no_grad():
        mse = (prior.eps(prior.q_sample(x0, tt, noise), tt) - noise).pow(2).mean().item()
    trivial = noise.pow(2).mean().item()  # predicting ε = 0
    assert trivial == pytest.approx(1.0, abs=0.05)
    assert mse < 0.25 * trivial, f"ε-MSE {mse:.3f} at t={t}"


def test_bundled_prior_config_builds_from_a_run_config(tmp_path):
    from diffprior import BuildContext
    from diffprior import validate_config

    config = validate_config({"prior": {"type": "unet", "checkpoint": "digits"}}, base_dir=tmp_path)
    prior = config.prior.build(BuildContext())
    assert prior.metadata["training"]["steps"] > 0
