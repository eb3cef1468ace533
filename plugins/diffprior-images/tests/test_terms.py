"""Behaviour of the image terms on small tensors and real digits (no diffusion prior needed)."""

import pytest
import torch

from conftest import ascend, assert_per_sample
from diffprior_images.plugin import (
    ClassifierConfig,
    DigitRef,
    IntensityConfig,
    MaskConfig,
    SegmentationConfig,
    SymmetryConfig,
)


def _noise(n=3, seed=0):
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --------------------------------------------------------------------------- symmetry
@pytest.mark.parametrize("axis, dim", [("vertical", -1), ("horizontal", -2)])
def test_symmetry_prefers_mirror_images(ctx, axis, dim):
    term = SymmetryConfig(axis=axis).build(ctx)
    x = _noise()
    symmetric = (x + x.flip(dim)) / 2
    assert (term.log_c(symmetric) > term.log_c(x)).all()
    assert torch.allclose(term.log_c(symmetric), torch.zeros(3))
    # the other mirror is not rewarded by this axis
    other = (x + x.flip(-1 if dim == -2 else -2)) / 2
    assert (term.log_c(other) < -1e-3).all()
    improved = ascend(term, x)
    assert (term.metrics(improved)["mse"] < 0.5 * term.metrics(x)["mse"]).all()
    assert_per_sample(term, x)


# --------------------------------------------------------------------------- intensity
def test_intensity_thin_and_thick_pull_opposite_ways(ctx):
    thin = IntensityConfig(mode="thin").build(ctx)
    thick = IntensityConfig(mode="thick").build(ctx)
    x = _noise()
    darker, brighter = x - 0.5, x + 0.5
    assert (thin.log_c(darker.clamp(-1, 1)) > thin.log_c(x)).all()
    assert (thick.log_c(brighter.clamp(-1, 1)) > thick.log_c(x)).all()
    assert (thin.metrics(ascend(thin, x))["mean_ink"] < thin.metrics(x)["mean_ink"]).all()
    assert (thick.metrics(ascend(thick, x))["mean_ink"] > thick.metrics(x)["mean_ink"]).all()
    assert_per_sample(thin, x)


def test_intensity_level_is_one_sided(ctx):
    term = IntensityConfig(mode="thin", level=0.2).build(ctx)
    empty = torch.full((1, 1, 32, 32), -1.0)  # no ink: already thin enough
    half = torch.zeros(1, 1, 32, 32)  # ink 0.5
    assert term.log_c(empty).item() == 0.0
    assert term.log_c(half).item() == pytest.approx(-(0.5 - 0.2) ** 2)
    assert term.metrics(ascend(term, half, steps=60))["mean_ink"].item() <= 0.25
    x = empty.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(term.log_c(x).sum(), x)
    assert grad.abs().sum() == 0  # below the level nothing pulls


# --------------------------------------------------------------------------- classifier
def test_classifier_scores_real_digits_and_steers_noise(ctx, digits):
    images, labels = digits
    threes, fives = images[labels == 3][:4], images[labels == 5][:4]
    term = ClassifierConfig(model="digits", target=3).build(ctx)
    assert (term.log_c(threes) > term.log_c(fives)).all()
    assert term.metrics(threes)["hit"].mean() >= 0.75
    start = fives[:2]
    steered = ascend(term, start, steps=30, lr=0.05)
    assert (term.metrics(steered)["p_target"] > term.metrics(start)["p_target"]).all()
    assert_per_sample(term, _noise())


def test_multilabel_timm_classifier_with_augmentation(ctx, tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, num_classes=4, in_chans=3)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "attrs.safetensors"))
    config = ClassifierConfig.model_validate(
        {"timm": "test_resnet", "checkpoint": "attrs.safetensors", "num_classes": 4, "targets": [1, 0, 1, 1],
         "attributes": [0, 2], "input_size": 64, "augment": {"copies": 3, "blur": 2.0}},
        context={"base_dir": tmp_path},
    )
    term = config.build(ctx)
    x = _noise(2)
    steered = ascend(term, x, steps=15, lr=0.05)
    assert (term.log_c(steered) > term.log_c(x)).all()
    assert term.metrics(steered)["attributes_hit"].shape == (2,)
    # augmentations are drawn per call, shared by the batch: a fresh term gives the same views
    # to a sample whether it is alone or in a batch
    batch = config.build(ctx).log_c(_noise(3))
    alone = torch.cat([config.build(ctx).log_c(_noise(3)[i: i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, alone, rtol=1e-4, atol=1e-5)


def test_digit_augmentation_shift_and_noise_is_per_sample(ctx, digits):
    images, labels = digits
    config = ClassifierConfig.model_validate({"model": "digits", "target": 3,
                                              "augment": {"copies": 4, "flip": False, "blur": 0.0, "brightness": 0.0,
                                                          "shift": 2, "noise": 0.2}})
    threes, fives = images[labels == 3][:3], images[labels == 5][:3]
    term = config.build(ctx)
    assert (term.log_c(threes) > term.log_c(fives)).all()
    batch = config.build(ctx).log_c(_noise(3))
    alone = torch.cat([config.build(ctx).log_c(_noise(3)[i: i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, alone, rtol=1e-4, atol=1e-5)


def test_denoised_classifier_scores_the_priors_estimate_not_x(digits):
    """Under a prior that only believes in one real 3 (a narrow Gaussian around it), the
    denoised estimate of any image is that 3: the classifier scores it, not the pixels of x."""
    from diffprior import BuildContext
    from diffprior import NoiseSchedule
    from diffprior import GaussianPrior

    images, labels = digits
    three, five = images[labels == 3][:1], images[labels == 5][:1]
    prior = GaussianPrior(three[0], torch.full_like(three[0], 1e-4), NoiseSchedule.linear(1000), data_range=(-1.0, 1.0))
    ctx = BuildContext(prior=prior, steps=10)
    plain = ClassifierConfig(model="digits", target=3).build(ctx)
    for jacobian in (True, False):
        config = ClassifierConfig.model_validate({"model": "digits", "target": 3,
                                                  "denoised": {"t": [200, 400], "copies": 2, "jacobian": jacobian}})
        term = config.build(ctx)
        # the 5 is a 5 for the plain classifier, a 3 once the prior has denoised it
        assert plain.log_c(five).exp().item() < 0.5
        assert term.log_c(five).exp().item() > 0.9
        x = _noise(3).requires_grad_(True)
        (grad,) = torch.autograd.grad(term.log_c(x)[0], x)
        assert grad[0].abs().sum() > 0 and grad[1:].abs().sum() == 0
        batch = config.build(ctx).log_c(_noise(3))
        alone = torch.cat([config.build(ctx).log_c(_noise(3)[i: i + 1]) for i in range(3)])
        torch.testing.assert_close(batch, alone, rtol=1e-4, atol=1e-5)


def test_denoised_config_errors():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="low ≤ high"):
        ClassifierConfig.model_validate({"model": "digits", "target": 3, "denoised": {"t": [300, 100]}})
    with pytest.raises(ValidationError, match="extra"):
        ClassifierConfig.model_validate({"model": "digits", "target": 3, "denoised": {"steps": 3}})


# --------------------------------------------------------------------------- mask
def test_mask_pulls_known_pixels_only(ctx, digits):
    term = MaskConfig(image=DigitRef(split="heldout", index=0), region="top-half").build(ctx)
    target = digits[0][0:1]
    x = _noise(2)
    assert term.log_c(target).item() == pytest.approx(0.0)
    assert (term.log_c(target.expand(2, -1, -1, -1)) > term.log_c(x)).all()
    grad_x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(term.log_c(grad_x).sum(), grad_x)
    assert grad[..., 16:, :].abs().sum() == 0 and grad[..., :16, :].abs().sum() > 0
    assert (term.metrics(ascend(term, x))["known_mse"] < term.metrics(x)["known_mse"]).all()
    assert_per_sample(term, x)


# --------------------------------------------------------------------------- segmentation
def test_segmentation_prefers_the_labelled_digit(ctx, digits):
    images, labels = digits
    index = 7
    term = SegmentationConfig(labels=DigitRef(split="heldout", index=index)).build(ctx)
    other = int((labels != labels[index]).nonzero()[0])
    own, different = images[index: index + 1], images[other: other + 1]
    assert term.log_c(own) > term.log_c(different)
    assert term.metrics(own)["stroke_iou"].item() == pytest.approx(1.0)
    assert term.metrics(own)["pixel_accuracy"].item() > 0.9
    steered = ascend(term, different, steps=30)
    assert term.metrics(steered)["stroke_iou"] > term.metrics(different)["stroke_iou"]
    assert_per_sample(term, _noise())
