"""The ``tsp-edges`` variable: N×N edge logits → a soft tour image the prior can judge.

A = row-softmax(−temperature·L) with the diagonal masked: row i is a distribution over the
city that follows i. The image is 2·(Σ_ij A_ij·E_ij − 0.5) with E_ij the edge image of the
segment i–j drawn at 0.5, so a hard successor matrix draws every tour edge at 0 on a −1
background, exactly like the training images; city pixels are forced to +1, so the cities
enter by construction and no constraint term is needed.
"""

from __future__ import annotations

from typing import Sequence

import torch
from diffprior import ConfigError, Variable, per_sample_randn

from .raster import EdgeImages


def successor_matrix(params: torch.Tensor, temperature: float) -> torch.Tensor:
    """A [B, N, N] from edge logits L: row-softmax of −temperature·L with the diagonal masked."""
    n = params.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=params.device)
    logits = (-temperature * params).masked_fill(eye, float("-inf"))
    return torch.softmax(logits, dim=-1)


class TspEdges(Variable):
    """Edge logits [B, N, N] of a batch of instances (each sample has its own cities, or all
    samples share the cities of a single instance: restarts from different seeds).

    ``coords`` [B, N, 2] may be given now, or later through :meth:`set_cities`.
    """

    def __init__(self, prior, coords: torch.Tensor | None = None, temperature: float = 0.1, size: int | None = None):
        super().__init__(prior)
        shape = tuple(prior.shape)
        if len(shape) != 3 or shape[0] != 1 or shape[1] != shape[2]:
            raise ConfigError(f"variable tsp-edges needs a one-channel square image prior; this prior's samples are {shape}")
        self.image_size = shape[1]
        self.temperature = temperature
        self.size = size
        self.edges: EdgeImages | None = None
        if coords is not None:
            self.set_cities(coords)

    def set_cities(self, coords) -> None:
        coords = torch.as_tensor(coords, dtype=torch.float64)
        n = coords.shape[1]
        if self.size is not None and n != self.size:
            raise ConfigError(f"the instances have {n} cities but this variable was set up for {self.size}")
        self.size = n
        self.param_shape = (n, n)
        self.edges = EdgeImages(coords, self.image_size, device=self.prior.device)

    def init(self, gens: Sequence[torch.Generator], device) -> torch.Tensor:
        if self.edges is None:
            raise ConfigError("variable tsp-edges has no cities yet: give it instances before the run starts")
        if self.edges.batch != 1 and len(gens) != self.edges.batch:
            raise ConfigError(f"{len(gens)} samples were asked for but {self.edges.batch} instances are loaded")
        return per_sample_randn(gens, self.param_shape, torch.empty(0, device=device))

    def adjacency(self, params: torch.Tensor) -> torch.Tensor:
        """A [B, N, N]: row-softmax of −temperature·L with the diagonal masked."""
        return successor_matrix(params, self.temperature)

    def image_from_adjacency(self, A: torch.Tensor) -> torch.Tensor:
        e = self.edges
        # E_ij = E_ji: an unordered pair is drawn with weight A_ij + A_ji, at intensity 0.5
        pair_weights = 0.5 * (A[:, e.pair_i, e.pair_j] + A[:, e.pair_j, e.pair_i])
        image = 2.0 * (e.weighted_sum(pair_weights) - 0.5)
        image = image.masked_fill(e.city_mask, 1.0)
        return image.view(-1, 1, self.image_size, self.image_size)

    def to_x(self, params: torch.Tensor, progress: float) -> torch.Tensor:
        return self.image_from_adjacency(self.adjacency(params))
