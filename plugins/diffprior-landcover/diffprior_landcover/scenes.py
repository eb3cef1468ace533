"""Scene inputs of the terms and the variable: images and coarse maps from files (see :mod:`.files`)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from diffprior import ConfigError

from .files import SceneFileError, read_images, read_label_maps
from .world import NUM_CLASSES

TABLE_FILE = Path(__file__).parent / "weights" / "coarse-tables.json"


def pick_scenes(stack: np.ndarray, index, start, path, what: str) -> np.ndarray:
    """Scene ``index`` of a stack (as a stack of one), or the scenes from ``start`` on."""
    n = len(stack)
    if index is not None:
        if index >= n:
            raise ConfigError(f"{what}: index = {index} but {path} holds {n} scene(s)")
        return stack[index:index + 1]
    if start >= n:
        raise ConfigError(f"{what}: start = {start} but {path} holds {n} scene(s)")
    return stack[start:]


def load_term_images(cfg) -> torch.Tensor:
    """[N, 3, H, W] in [0, 1]: the image(s) a term config points at (N = 1 for a single scene)."""
    try:
        stack = read_images(cfg.image, cfg.key)
    except SceneFileError as exc:
        raise ConfigError(f"terms: nmi image: {exc}") from None
    return torch.from_numpy(pick_scenes(stack, cfg.index, cfg.start, cfg.image, "terms: nmi image")).float()


def load_coarse_indices(path, key, index, start, classes: int, what: str = "coarse map") -> torch.Tensor:
    """Coarse class indices [N, h, w] (or probabilities [N, K, h, w])."""
    try:
        stack = read_label_maps(path, key, classes)
    except SceneFileError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    return torch.from_numpy(pick_scenes(stack, index, start, path, what))


def synthetic_world_table(block: int) -> torch.Tensor:
    """Row a: the class distribution inside blocks whose coarse label is a, measured on training
    scenes of the synthetic world (bundled for blocks 8 and 16; other sizes are measured now)."""
    tables = json.loads(TABLE_FILE.read_text()) if TABLE_FILE.exists() else {}
    if str(block) in tables:
        return torch.tensor(tables[str(block)]["table"])
    return torch.tensor(measure_table(block, 300))


@lru_cache(maxsize=8)
def measure_table(block: int, count: int, wrong: float = 0.1) -> list[list[float]]:
    from .world import block_histograms, coarse_map, label_map, split_seeds

    counts = np.zeros((NUM_CLASSES, NUM_CLASSES))
    for seed in split_seeds("train", count, offset=500_000):  # away from the prior's training maps
        labels = label_map(seed)
        hist = block_histograms(labels, block)
        coarse = coarse_map(labels, seed, block, wrong)
        np.add.at(counts, coarse.ravel(), hist.reshape(-1, NUM_CLASSES))
    counts += 1e-3
    return (counts / counts.sum(1, keepdims=True)).round(5).tolist()


def load_term_coarse(cfg, ctx) -> torch.Tensor:
    """Per-block class distributions [N, K, h, w] for a lowres-kl config."""
    from .terms import coarse_distribution

    classes = ctx.prior.shape[0]
    coarse = load_coarse_indices(cfg.coarse, cfg.key, cfg.index, cfg.start, classes, "terms: lowres-kl coarse")
    if coarse.ndim == 4:
        return coarse.float()
    table = None
    if cfg.table == "synthetic-world":
        if classes != NUM_CLASSES:
            raise ConfigError(f"terms: lowres-kl table 'synthetic-world' is for {NUM_CLASSES} classes; the prior has {classes}")
        table = synthetic_world_table(ctx.prior.shape[-1] // coarse.shape[-1])
    elif cfg.table is not None:
        table = torch.tensor(cfg.table, dtype=torch.float32)
        if table.shape != (classes, classes) or (table < 0).any():
            raise ConfigError(f"terms: lowres-kl table must be a non-negative {classes}×{classes} list of rows, got shape {list(table.shape)}")
    if int(coarse.max()) >= classes:
        raise ConfigError(f"terms: lowres-kl coarse map has class {int(coarse.max())}; the prior has classes 0..{classes - 1}")
    return coarse_distribution(coarse, classes, table, cfg.confidence)
