"""The prior: ε_θ(x_t, t) with its noise schedule, sample shape and data range."""

from __future__ import annotations

from typing import Sequence

import torch

from diffprior.method.noise import NoiseSchedule
from diffprior.method.rng import per_sample_randn


class Prior(torch.nn.Module):
    """A DDPM prior. Subclasses implement :meth:`eps`.

    ``shape`` is the shape of one sample (e.g. ``(1, 32, 32)``); ``data_range`` the range of
    clean data (``(-1, 1)`` for images). Timesteps are integers in [0, T-1].
    """

    def __init__(self, noise: NoiseSchedule, shape: Sequence[int], data_range=(-1.0, 1.0)):
        super().__init__()
        self.noise = noise
        self.shape = tuple(int(s) for s in shape)
        self.data_range = (float(data_range[0]), float(data_range[1]))

    @property
    def T(self) -> int:
        return self.noise.T

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predict the noise in ``x_t`` at integer timesteps ``t`` (shape [B])."""
        raise NotImplementedError

    def forward(self, x_t, t):
        return self.eps(x_t, t)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        a = self.noise.alpha_bar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """The clean estimate x̂₀ = (x_t − √(1−ᾱ_t)·ε_θ(x_t, t)) / √ᾱ_t at integer timesteps ``t``
        (shape [B]), unclipped; ``eps``: a noise prediction already made for ``x_t``."""
        a = self.noise.alpha_bar(t, x_t)
        if eps is None:
            eps = self.eps(x_t, t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    @torch.no_grad()
    def denoise(
        self,
        x: torch.Tensor,
        from_t: int,
        steps: int | None = None,
        method: str = "ddpm",
        generators: Sequence[torch.Generator] | None = None,
        clip: bool = True,
        progress: bool = False,
        add_noise: bool = True,
    ) -> torch.Tensor:
        """Noise clean ``x`` to ``from_t`` and denoise it back to t = 0.

        With ``add_noise=False`` ``x`` is taken as x_{from_t} already (sampling starts from
        pure noise at t = T - 1 this way). ``method``: ``ddpm``
        (ancestral, the η = 1 case) or ``ddim`` (deterministic, η = 0). ``steps`` evenly
        spaced timesteps are used (default: every one).
        """
        if method not in ("ddpm", "ddim"):
            raise ValueError(f"unknown denoising method {method!r}: use 'ddpm' or 'ddim'")
        from_t = int(min(max(from_t, 1), self.T - 1))
        steps = int(steps or from_t)
        gens = generators or [torch.Generator().manual_seed(i) for i in range(x.shape[0])]
        eta = 1.0 if method == "ddpm" else 0.0
        ts = torch.linspace(from_t, 0, steps + 1).round().long().unique_consecutive().tolist()
        if add_noise:
            t0 = torch.full((x.shape[0],), from_t, dtype=torch.long, device=x.device)
            x = self.q_sample(x, t0, per_sample_randn(gens, self.shape, x))
        lo, hi = self.data_range
        ab = self.noise.alphas_cumprod
        iterator = zip(ts[:-1], ts[1:])
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(list(iterator), desc=f"denoise ({method})", leave=False)
        for t, t_prev in iterator:
            tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            eps = self.eps(x, tt)
            a, a_prev = float(ab[t]), float(ab[t_prev])
            x0 = (x - (1 - a) ** 0.5 * eps) / a**0.5
            if clip:
                x0 = x0.clamp(lo, hi)
                eps = (x - a**0.5 * x0) / (1 - a) ** 0.5
            sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)) ** 0.5
            x = a_prev**0.5 * x0 + max(1 - a_prev - sigma**2, 0.0) ** 0.5 * eps
            if sigma > 0:
                x = x + sigma * per_sample_randn(gens, self.shape, x)
        # last step: t = 0 → the clean estimate
        x0 = self.predict_x0(x, torch.zeros(x.shape[0], dtype=torch.long, device=x.device))
        return x0.clamp(lo, hi) if clip else x0

    @torch.no_grad()
    def sample(
        self,
        n: int,
        steps: int | None = None,
        method: str = "ddpm",
        seeds: Sequence[int] | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Unconditional samples: pure noise at t = T-1 denoised to t = 0."""
        seeds = list(seeds) if seeds is not None else list(range(n))
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        x = per_sample_randn(gens, self.shape, torch.empty(0, device=self.device))
        return self.denoise(x, self.T - 1, steps=steps, method=method, generators=gens, progress=progress, add_noise=False)


class GaussianPrior(Prior):
    """x ~ N(mean, diag(var)) with its exact ε_θ.

    x_t = √ᾱ x + √(1-ᾱ) ε has marginal N(√ᾱ μ, ᾱσ² + 1 - ᾱ), so the optimal noise
    predictor is ε_θ(x_t, t) = √(1-ᾱ) (x_t - √ᾱ μ) / (ᾱσ² + 1 - ᾱ).
    """

    def __init__(self, mean: torch.Tensor, var: torch.Tensor, noise: NoiseSchedule, data_range=(-1e4, 1e4)):
        mean = torch.as_tensor(mean, dtype=torch.float32)
        var = torch.as_tensor(var, dtype=torch.float32).expand_as(mean).clone()
        if (var <= 0).any():
            raise ValueError("the Gaussian prior's variance must be positive")
        super().__init__(noise, mean.shape, data_range)
        self.register_buffer("mean", mean)
        self.register_buffer("var", var)

    def eps(self, x_t, t):
        a = self.noise.alpha_bar(t, x_t)
        return (1 - a).sqrt() * (x_t - a.sqrt() * self.mean) / (a * self.var + 1 - a)
