"""Figures for digit samples, computed independently of the guidance networks.

The judge (bundled ``digits-judge``) is never a constraint. It differs from the guidance
classifier ``digits`` in architecture (VGG-style max-pool blocks, ReLU, against stride-2
convolutions, SiLU) and in training data (the ``judge`` split with random affine warps,
against the ``prior`` split), and it was trained with outlier exposure: noise, blobs, ink
spots and constant images taught to give a flat answer, two overlaid digits ½ each. So its
confidence (max softmax) is low on junk and on ambiguous drawings, not only its accuracy
meaningful. Its accuracy says whether a class constraint was met; its confidence and the
Fréchet distance of its features to real ``heldout`` digits say whether a sample looks like
one clear digit. Images are [B, 1, 32, 32] in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch


class Judge:
    """The independent judge classifier: class probabilities and hidden features."""

    def __init__(self, device: str = "cpu"):
        from .bundled import get_model_spec

        self.model = get_model_spec("digits-judge", "classify").build(device)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.clamp(-1, 1)).softmax(1)

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x.clamp(-1, 1))

    def accuracy(self, x: torch.Tensor, target: int) -> float:
        return float((self.probabilities(x).argmax(1) == target).float().mean())

    def confidence(self, x: torch.Tensor) -> float:
        """Mean max-softmax probability: near 1 when every sample is clearly some digit."""
        return float(self.probabilities(x).max(1).values.mean())


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2(ΣaΣb)^½) between two feature sets [N, D]."""
    from scipy import linalg

    a, b = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # near-singular product: regularise, as the FID reference code does
        offset = np.eye(len(cov_a)) * 1e-6
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def symmetry_error(x: torch.Tensor, axis: str = "vertical") -> torch.Tensor:
    """Per-sample MSE between an image and its mirror image (0 = perfectly symmetric)."""
    return (x - x.flip(-1 if axis == "vertical" else -2)).pow(2).flatten(1).mean(1)


def mean_ink(x: torch.Tensor) -> torch.Tensor:
    """Per-sample mean intensity in [0, 1] (0 = blank)."""
    return ((x.clamp(-1, 1) + 1) / 2).flatten(1).mean(1)


def masked_error(x: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE on the known pixels."""
    return (mask * (x - image) ** 2).flatten(1).sum(1) / mask.sum()
