"""The independent judge and the figures of the digits benchmark."""

import torch

from diffprior_images.evaluation import Judge, frechet_distance, masked_error, mean_ink, symmetry_error


def test_judge_separates_real_digits_from_noise(digits):
    images, labels = digits
    judge = Judge()
    assert float((judge.probabilities(images).argmax(1) == labels).float().mean()) > 0.9
    threes = images[labels == 3]
    assert judge.accuracy(threes, 3) > 0.9
    noise = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert judge.confidence(images[:64]) > judge.confidence(noise) + 0.2


def test_frechet_distance_ranks_real_digits_closer_than_noise(digits):
    from diffprior_images.digits import mnist_digits

    judge = Judge()
    reference = judge.features(digits[0])
    prior_split = mnist_digits("prior")[0]  # ordered by class: take a random subset
    real = judge.features(prior_split[torch.randperm(len(prior_split), generator=torch.Generator().manual_seed(0))[:200]])
    noise = judge.features(torch.rand(200, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert abs(frechet_distance(reference, reference)) < 1e-3 * frechet_distance(noise, reference)
    assert frechet_distance(real, reference) < 0.2 * frechet_distance(noise, reference)


def test_pixel_figures():
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    symmetric = (x + x.flip(-1)) / 2
    assert torch.allclose(symmetry_error(symmetric), torch.zeros(2))
    assert (symmetry_error(x) > 0).all()
    assert torch.allclose(mean_ink(torch.full((1, 1, 4, 4), -1.0)), torch.zeros(1))
    mask = torch.zeros(1, 8, 8)
    mask[:, :4] = 1
    assert torch.allclose(masked_error(x, x[0], mask)[0], torch.zeros(()))


def test_mean_ink_is_the_mean_intensity_in_zero_one():
    x = torch.full((3, 1, 4, 4), -1.0)
    x[0, 0, :2] = 1.0  # half the pixels full: 0.5
    x[1, 0, 0, 0] = 0.0  # one pixel at mid-grey: 0.5 / 16
    x[2] = 3.0  # out of range: clipped to 1 first
    x[2, 0, 0] = -5.0  # one row clipped to 0: 12 / 16
    torch.testing.assert_close(mean_ink(x), torch.tensor([0.5, 0.5 / 16, 0.75]))


def test_masked_error_is_the_mse_on_the_known_pixels_only():
    image = torch.zeros(1, 4, 4)
    mask = torch.zeros(1, 4, 4)
    mask[0, 0, :] = 1  # 4 known pixels
    x = torch.zeros(2, 1, 4, 4)
    x[0, 0, 0] = torch.tensor([1.0, -1.0, 0.5, 0.0])  # squared errors 1 + 1 + 0.25 + 0 over 4 pixels
    x[1, 0, 1:] = 7.0  # errors only where the mask is 0: not counted
    x[1, 0, 0, 0] = 2.0  # 4 / 4
    torch.testing.assert_close(masked_error(x, image, mask), torch.tensor([2.25 / 4, 1.0]))


def test_judge_is_independent_of_the_guidance_classifier_and_unsure_on_junk(digits):
    """Another architecture and training split than the guidance network; outlier exposure
    makes its confidence low on junk and on two overlaid digits, not only on uniform noise."""
    from diffprior_images.bundled import get_model_spec
    from diffprior_images.training import junk_images

    judge_info, guide_info = get_model_spec("digits-judge").info, get_model_spec("digits").info
    assert judge_info["arch"] != guide_info["arch"] and judge_info["trained_on"] != guide_info["trained_on"]
    images, labels = digits
    junk, targets = junk_images(200, torch.Generator().manual_seed(123), (images, labels))
    assert junk.shape == (200, 1, 32, 32) and junk.min() >= -1 and junk.max() <= 1
    assert torch.allclose(targets.sum(1), torch.ones(200))
    judge = Judge()
    assert judge.confidence(images) > 0.85
    assert judge.confidence(junk) < 0.4
    blobs = torch.nn.functional.avg_pool2d(torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(1)), 5, 1, 2)
    assert judge.confidence((blobs * 4).clamp(-1, 1)) < 0.5
