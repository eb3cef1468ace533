"""Solving batches of instances with a tour-image prior, and the baselines it is compared with.

Every method maps coords [M, N, 2] to tours [M, N]. The prior-based solver runs the paper's
recipe (``recipe.toml``, the same run config as ``examples/tsp.toml``) through the core's
``solve``, which batches it exactly as ``diffprior run`` does, then decodes A + Aᵀ greedily
and (optionally) improves the tours with 2-opt. Sample k uses seed ``seed + k`` (its global
index), so the result of an instance does not depend on the batch size.
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


RECIPE = Path(__file__).parent / "recipe.toml"  # the paper's recipe: the one place it is written


def recipe(instances, overrides=(), *, start: int = 0, count: int | None = None, seed: int = 0):
    """The paper's recipe (``recipe.toml``) as a validated run config for instances
    ``start .. start + count - 1`` of ``instances`` (default: to the end of the file): sample k
    solves instance ``start + k`` with seed ``seed + k``. ``overrides`` are ``--set KEY=VALUE``
    items, applied last, so every key of the run config reaches the TSP commands."""
    from diffprior import load_config

    from .instances import read_instances

    instances = Path(instances).resolve()
    if count is None:
        count = max(1, len(read_instances(instances)) - start)
    sets = [f"variable.instances={instances}", f"variable.start={start}", f"batch={count}", f"seed={seed}"]
    return load_config(RECIPE, sets + list(overrides))


def recipe_settings(config) -> dict:
    """The recipe's figures a report quotes (steps, lr, betas, gradient, temperature, batch size, seed)."""
    o = config.optimizer
    return {"steps": o.steps, "lr": o.lr(0.0, 0, o.steps), "betas": list(o.betas), "gradient": config.gradient,
            "temperature": config.variable.temperature, "batch_size": config.batch_size, "seed": config.seed}


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


def optimise_heatmaps(prior, instances, overrides=(), *, start: int = 0, count: int | None = None, seed: int = 0,
                      progress: bool = True) -> PriorSolution:
    """Optimise the tsp-edges variable of instances ``start .. start + count - 1`` of the file
    ``instances`` under ``prior``: the recipe's run (:func:`recipe`, with ``overrides``),
    ``batch_size`` instances at a time, by the core's ``solve``. Instance i uses seed
    ``seed + i - start``, so its result does not depend on the batch size."""
    import torch
    from diffprior import solve

    from .variable import successor_matrix

    config = recipe(instances, [f"timesteps.high={prior.T}", *overrides], start=start, count=count, seed=seed)
    begin = time.perf_counter()
    result = solve(config, prior=prior, progress=progress)
    with torch.no_grad():
        adjacency = successor_matrix(result.params, config.variable.temperature).cpu().numpy()
    return PriorSolution(adjacency, result.x.cpu().numpy(), time.perf_counter() - begin,
                         extra={"settings": recipe_settings(config)})


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


def decode_tours(adjacency: np.ndarray, coords: np.ndarray, uniform_weight: float = 0.0,
                 improve: bool = True) -> np.ndarray:
    """Tours from heat-maps: greedy decoding of (1 − w)·A + w·U, then 2-opt unless ``improve`` is False."""
    tours = decode_heatmaps(mix_uniform(adjacency, uniform_weight), coords)
    return with_two_opt(coords, tours) if improve else tours
