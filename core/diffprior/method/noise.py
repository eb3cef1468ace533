"""DDPM noise schedules: β_t, α_t and ᾱ_t for t = 0..T-1 (ε-prediction)."""

from __future__ import annotations

import math

import torch


class NoiseSchedule:
    """β_1..β_T of a DDPM; ``alphas_cumprod[t]`` is ᾱ at integer timestep t ∈ [0, T-1]."""

    def __init__(self, betas: torch.Tensor, name: str = "custom"):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-D tensor with values in (0, 1)")
        self.name = name
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        # Ho et al. scale the endpoints so any T spans the same amount of noise as T = 1000
        scale = 1000 / T
        return cls(torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64), "linear")

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        def f(t):
            return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

        betas = [min(1 - f(i + 1) / f(i), max_beta) for i in range(T)]
        return cls(torch.tensor(betas, dtype=torch.float64), "cosine")

    @classmethod
    def named(cls, name: str, T: int = 1000) -> "NoiseSchedule":
        if name == "linear":
            return cls.linear(T)
        if name == "cosine":
            return cls.cosine(T)
        raise ValueError(f"unknown noise schedule {name!r}: use 'linear' or 'cosine'")

    def alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """ᾱ_t for integer t of shape [B], shaped [B, 1, ...] to broadcast against ``like``."""
        a = self.alphas_cumprod.to(like.device)[t.to(like.device).long()].to(like.dtype)
        return a.view(-1, *([1] * (like.ndim - 1)))

    def to_config(self) -> dict:
        return {"name": self.name, "T": self.T}
