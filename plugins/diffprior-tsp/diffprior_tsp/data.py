"""Training data for a tour-image prior: generated instances, LKH tours, rendered images.

The labelled instances are written in the standard text format (so they can be inspected,
reused and re-rendered) and the rendered images as a tensor file [M, 1, 64, 64] in [−1, 1]
that the U-Net plugin's ``train-prior`` reads as its data source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .instances import Instances, random_instances, read_instances, solve_reference, write_instances


def label_instances(coords: np.ndarray, runs: int = 3, progress: bool = True) -> np.ndarray:
    """LKH tours [M, N] for coords [M, N, 2]."""
    from tqdm.auto import tqdm

    return np.stack([solve_reference(c, runs) for c in tqdm(coords, desc="LKH tours", disable=not progress)])


def make_dataset(out: Path, count: int, size: int, seed: int, runs: int = 3, progress: bool = True) -> Instances:
    """Generate, label and cache ``count`` instances to ``out`` (.txt); reuses a complete cache."""
    out = Path(out)
    if out.exists():
        cached = read_instances(out)
        if len(cached) >= count and cached.size == size and cached.tours is not None:
            return cached.head(count)
    coords = random_instances(count, size, seed)
    tours = label_instances(coords, runs, progress)
    write_instances(out, coords, tours)
    return Instances(coords, tours)


def render_dataset(instances: Instances, out: Path, progress: bool = True, chunk: int = 256) -> None:
    """Render the instances' tours to ``out`` (.pt: a float tensor [M, 1, 64, 64])."""
    import torch
    from tqdm.auto import tqdm

    from .raster import render_tours

    if instances.tours is None:
        raise ValueError("the instances have no tours to render; label them first (diffprior tsp data)")
    images = []
    for start in tqdm(range(0, len(instances), chunk), desc="render", disable=not progress):
        images.append(render_tours(instances.coords[start:start + chunk], instances.tours[start:start + chunk]))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(torch.cat(images), out)
