"""Solving batches of instances with a tour-image prior, and the baselines it is compared with.

Every method maps coords [M, N, 2] to tours [M, N]. The prior-based solver optimises the
``tsp-edges`` variable of a batch of instances under the prior's free energy (the core's
``optimize``), then decodes A + Aᵀ greedily and (optionally) improves the tours with 2-opt.
Sample i of a batch uses seed ``seed + i`` (its global index), so the result of an instance
does not depend on the batch size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffprior import ConfigError

from .decode import edge_scores, greedy_edge_tours, nearest_neighbour_tours, two_opt
from .instances import solve_reference

WEIGHTS_DIR = Path(__file__).parent / "weights"
BUNDLED_PRIOR = WEIGHTS_DIR / "tsp50.safetensors"


@dataclass
class PriorSettings:
    """The paper's recipe by default: Adam lr 1, betas (0, 0.9), 256 steps, t_i from T down
    to 0 with cosine modulation (amplitude 1/3, period 50), back-propagation through ε_θ."""

    steps: int = 256
    lr: float = 1.0
    betas: tuple[float, float] = (0.0, 0.9)
    gradient: str = "full"
    temperature: float = 0.1
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.gradient not in ("full", "sds"):
            raise ConfigError(f"gradient must be 'full' or 'sds', got {self.gradient!r}")

    def options(self, T: int):
        """The run options of this recipe for a prior with T diffusion steps."""
        from diffprior import Options

        return Options(
            optimizer={"type": "adam", "lr": self.lr, "betas": self.betas, "steps": self.steps},
            timesteps={"type": "cosine-linear", "high": T, "low": 0, "amplitude": 1 / 3, "period": 50},
            gradient=self.gradient,
        )


@dataclass
class PriorSolution:
    adjacency: np.ndarray  # [M, N, N] the optimised row-softmax successor matrices
    images: np.ndarray  # [M, 1, S, S] the rendered images at the end of the optimisation
    seconds: float  # wall time of the optimisation (all batches)
    extra: dict = field(default_factory=dict)


def prior_cities(checkpoint) -> int | None:
    """The number of cities a TSP checkpoint was trained for (its ``tsp`` metadata section)."""
    from diffprior_unet.checkpoints import plugin_metadata

    return (plugin_metadata(checkpoint, "tsp") or {}).get("cities")


def load_tsp_prior(checkpoint=None, cities: int | None = None, device: str = "cpu", precision: str = "fp32"):
    """Load a tour-image prior; raise ConfigError if it is not one, or if it was trained for
    another instance size than ``cities``."""
    from diffprior_unet.checkpoints import load_prior

    if checkpoint is None:
        if not BUNDLED_PRIOR.exists():
            raise ConfigError(f"the bundled TSP prior {BUNDLED_PRIOR} is missing; train one (recipes/tsp50.toml)")
        checkpoint = BUNDLED_PRIOR
    name = Path(str(checkpoint)).name
    try:
        trained_for = prior_cities(checkpoint)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    if trained_for is None:
        raise ConfigError(
            f"{name} is not marked as a tour-image prior (its .json has no 'tsp' entry); add "
            '"tsp": {"cities": N} to its .json, or bundle it with `diffprior tsp install-prior CKPT --cities N`'
        )
    if cities is not None and trained_for != cities:
        raise ConfigError(
            f"the instances have {cities} cities but the prior {name} was trained on {trained_for}-city tours; "
            f"train a prior for {cities} cities (recipes/tsp50.toml on `diffprior tsp data --cities {cities}`) "
            "and pass it with --checkpoint"
        )
    return load_prior(checkpoint, device, precision)


def mark_checkpoint(checkpoint, cities: int) -> Path:
    """Record in a U-Net checkpoint's metadata the instance size its tour images were drawn from."""
    from diffprior_unet.checkpoints import set_plugin_metadata

    return set_plugin_metadata(checkpoint, "tsp", {"cities": int(cities),
                                                   "image": "tour image: background -1, edges 0, cities +1"})


def install_prior(checkpoint: Path, cities: int, name: str = "tsp50") -> Path:
    """Copy a trained checkpoint into the package's weights folder, recording its instance size."""
    from diffprior_unet.checkpoints import copy_checkpoint

    target = copy_checkpoint(checkpoint, WEIGHTS_DIR / f"{name}.safetensors")
    return mark_checkpoint(target, cities)


def optimise_heatmaps(prior, coords: np.ndarray, settings: PriorSettings, progress: bool = True) -> PriorSolution:
    """Optimise the tsp-edges variable of every instance, ``settings.batch_size`` at a time."""
    import torch
    from diffprior import optimize
    from tqdm.auto import tqdm

    from .variable import TspEdges

    options = settings.options(prior.T)
    adjacency, images = [], []
    start = time.perf_counter()
    starts = range(0, len(coords), settings.batch_size)
    for first in tqdm(starts, desc="instances (batches)", disable=not progress or len(starts) == 1, leave=False):
        chunk = torch.as_tensor(coords[first:first + settings.batch_size])
        variable = TspEdges(prior, chunk, temperature=settings.temperature)
        seeds = [settings.seed + first + k for k in range(chunk.shape[0])]
        result = optimize(prior, variable, [], seeds, options, progress=progress)
        with torch.no_grad():
            adjacency.append(variable.adjacency(result.params).cpu().numpy())
        images.append(result.x.cpu().numpy())
    return PriorSolution(np.concatenate(adjacency), np.concatenate(images), time.perf_counter() - start)


def mix_uniform(adjacency: np.ndarray, weight: float) -> np.ndarray:
    """(1 − w)·A + w·U, U the uniform heat-map 1/(N − 1): w = 0 decodes the prior's heat-map as
    the paper does, w = 1 the distances alone. The optimised A is nearly 0/1, so at w = 0 the
    edges the prior leaves out are ordered by noise; a little U orders them by distance."""
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"the uniform weight must be in [0, 1], got {weight}")
    if weight == 0.0:
        return adjacency
    n = adjacency.shape[-1]
    return (1.0 - weight) * np.asarray(adjacency) + weight / (n - 1)


def decode_heatmaps(adjacency: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """The paper's greedy decoding: edges by (A + Aᵀ)_ij / d_ij, degree ≤ 2, no sub-cycles."""
    return greedy_edge_tours(edge_scores(adjacency, coords))


def uniform_heatmap_tours(coords: np.ndarray) -> np.ndarray:
    """The prior-free baseline: the same greedy decoding of a uniform heat-map (edges by 1/d)."""
    n = coords.shape[1]
    uniform = np.full((len(coords), n, n), 1.0 / (n - 1))
    return decode_heatmaps(uniform, coords)


def nearest_neighbour(coords: np.ndarray) -> np.ndarray:
    return nearest_neighbour_tours(coords)


def lkh_tours(coords: np.ndarray, runs: int = 1, progress: bool = False) -> np.ndarray:
    from tqdm.auto import tqdm

    return np.stack([solve_reference(c, runs) for c in tqdm(coords, desc="LKH", disable=not progress, leave=False)])


def with_two_opt(coords: np.ndarray, tours: np.ndarray) -> np.ndarray:
    return two_opt(coords, tours)[0]
