"""The ``landcover-labels`` variable: the core's simplex label map with a choice of σ annealing and
an optional start from a coarse map."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from diffprior import ConfigError, SimplexLabelMap, per_sample_randn


class LandcoverLabels(SimplexLabelMap):
    """Per-class maps m → P(0.5 < N(m, σ) < 1.5) normalised over classes (the paper's
    parameterisation; the prior sees 2p − 1, terms see p).

    ``anneal``: σ goes from ``sigma_start`` to ``sigma_end`` geometrically (the core's) or
    linearly. With ``coarse`` [N, h, w] class indices (sample i uses row i; one row is shared),
    m starts at 0.5 + ``init_strength``·onehot(coarse, nearest-upsampled) + noise, i.e. leaning
    towards the coarse class; without it, at 0.5 + noise (the core's start).
    """

    def __init__(self, prior, sigma_start=0.2, sigma_end=0.02, anneal="geometric", coarse=None,
                 init_strength=0.3, init_noise=0.1):
        super().__init__(prior, sigma_start, sigma_end)
        if len(prior.shape) != 3:
            raise ConfigError(f"variable landcover-labels needs a prior over label maps [K, H, W]; this prior's samples are {prior.shape}")
        self.anneal = anneal
        self.init_strength, self.init_noise = init_strength, init_noise
        self.coarse = None
        if coarse is not None:
            coarse = torch.as_tensor(coarse)
            if coarse.ndim == 4:  # probabilities → their most likely class
                coarse = coarse.argmax(1)
            K, H, W = prior.shape
            if int(coarse.max()) >= K:
                raise ConfigError(f"variable landcover-labels: the coarse map has class {int(coarse.max())}; the prior has {K} classes")
            if H % coarse.shape[-2] or W % coarse.shape[-1]:
                raise ConfigError(f"variable landcover-labels: a {tuple(coarse.shape[-2:])} coarse map does not tile {H}×{W} label maps")
            onehot = F.one_hot(coarse.long(), K).permute(0, 3, 1, 2).float()
            self.coarse = F.interpolate(onehot, size=(H, W), mode="nearest")

    def sigma(self, progress: float) -> float:
        if self.anneal == "linear":
            return self.sigma_start + (self.sigma_end - self.sigma_start) * progress
        return super().sigma(progress)

    def init(self, gens, device):
        noise = per_sample_randn(gens, self.param_shape, torch.empty(0, device=device))
        m = 0.5 + self.init_noise * noise
        if self.coarse is not None:
            from .terms import batch_rows

            m = m + self.init_strength * batch_rows(self.coarse.to(device), len(gens), "variable landcover-labels")
        return m
