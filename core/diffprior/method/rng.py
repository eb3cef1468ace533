"""Per-sample random numbers: sample i draws only from its own generator.

This is what makes a batch of B problems behave exactly like B runs of one: the same seed
gives the same draws whatever the batch size or the sample's position.
"""

from __future__ import annotations

from typing import Sequence

import torch


def generators(seeds: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def per_sample_randn(gens: Sequence[torch.Generator], shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """A [B, *shape] standard normal tensor on ``like``'s device and dtype."""
    draws = [torch.randn(tuple(shape), generator=g) for g in gens]
    return torch.stack(draws).to(device=like.device, dtype=like.dtype if like.is_floating_point() else torch.float32)


def per_sample_uniform(gens: Sequence[torch.Generator], low: float, high: float) -> torch.Tensor:
    """One uniform draw in [low, high) per sample, shape [B] (on the CPU)."""
    return torch.stack([torch.rand((), generator=g) for g in gens]) * (high - low) + low
