"""A synthetic land-cover world with ground truth: label maps, aerial-looking images, coarse maps.

Everything is numpy and deterministic per seed: scene ``seed`` is the same on every machine.

* :func:`label_map` draws a 64×64 map of six classes (:data:`CLASSES`): grass as the
  background, field parcels with straight edges on a rotated cadastral grid, forest blobs
  (thresholded smooth noise), water as a lake with a smooth shore or a meandering river,
  roads as thin connected polylines and buildings as small rectangles beside the roads.
* :func:`render` turns a label map into an RGB image whose class colours and textures are
  drawn per image (parcels differ from each other, forest canopy is mottled, fields are
  striped, there is an illumination gradient, sensor blur and noise), so the colour → class
  mapping is unknown to a solver, as with real imagery.
* :func:`coarse_map` is what a user would have: the majority class of each block
  (8×8 or 16×16 pixels), with a fraction of blocks replaced by a wrong class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = ("water", "forest", "grass", "field", "road", "building")
WATER, FOREST, GRASS, FIELD, ROAD, BUILDING = range(6)
NUM_CLASSES = len(CLASSES)
# display colours of the classes in pictures of label maps (not the rendered images)
PALETTE = np.array([
    (30, 90, 200),    # water
    (20, 110, 40),    # forest
    (150, 210, 110),  # grass
    (225, 190, 90),   # field
    (90, 90, 90),     # road
    (220, 40, 40),    # building
], dtype=np.uint8)


@dataclass
class Scene:
    """One scene: ``labels`` [H, W] (int), ``image`` [H, W, 3] uint8, ``coarse`` [H/b, W/b] (int)."""

    seed: int
    labels: np.ndarray
    image: np.ndarray
    coarse: np.ndarray
    block: int


# ------------------------------------------------------------------------------ noise helpers
def smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """White noise low-passed with a Gaussian of std ``scale`` pixels (periodic), normalised to std 1."""
    white = rng.standard_normal((size, size))
    f = np.fft.fftfreq(size)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    kernel = np.exp(-2 * (np.pi * scale) ** 2 * (fx**2 + fy**2))
    out = np.real(np.fft.ifft2(np.fft.fft2(white) * kernel))
    return (out - out.mean()) / (out.std() + 1e-12)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an [H, W, C] or [H, W] array with reflected borders (sensor point-spread)."""
    radius = max(1, int(round(3 * sigma)))
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    pad = [(radius, radius), (radius, radius)] + [(0, 0)] * (img.ndim - 2)
    p = np.pad(img, pad, mode="reflect")
    p = sum(k[i] * p[i:i + img.shape[0]] for i in range(len(k)))
    p = sum(k[i] * p[:, i:i + img.shape[1]] for i in range(len(k)))
    return p


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")  # (y, x)


def _draw_polyline(mask: np.ndarray, points: np.ndarray, width: float) -> None:
    """Set pixels within ``width / 2`` of the polyline ``points`` [n, 2] (y, x) to True."""
    yy, xx = _grid(mask.shape[0])
    for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]):
        dy, dx = y1 - y0, x1 - x0
        length2 = dy * dy + dx * dx + 1e-12
        t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / length2, 0, 1)
        d2 = (yy - y0 - t * dy) ** 2 + (xx - x0 - t * dx) ** 2
        mask |= d2 <= (width / 2) ** 2


def _crossing_line(rng: np.random.Generator, size: int, bends: int, wobble: float) -> np.ndarray:
    """A polyline from one border of the image to the opposite one, with small random bends."""
    angle = rng.uniform(0, np.pi)
    centre = rng.uniform(0.25 * size, 0.75 * size, 2)
    direction = np.array([np.sin(angle), np.cos(angle)])
    normal = np.array([-direction[1], direction[0]])
    ts = np.linspace(-size, size, bends + 2)
    offsets = np.concatenate([[0], np.cumsum(rng.normal(0, wobble, bends)), [0]])
    offsets[-1] = offsets[-2]
    return centre + ts[:, None] * direction + offsets[:, None] * normal


# ------------------------------------------------------------------------------ label maps
def label_map(seed: int, size: int = 64) -> np.ndarray:
    """A label map [size, size] of class indices (see :data:`CLASSES`), deterministic per seed."""
    rng = np.random.default_rng([seed, 0x1A4D])
    labels = np.full((size, size), GRASS, dtype=np.int64)
    yy, xx = _grid(size)

    # field parcels: a rotated grid of strips cut into plots; each plot is a field or grass
    field_share = rng.choice([0.0, 0.3, 0.6, 0.85], p=[0.15, 0.25, 0.35, 0.25])
    if field_share > 0:
        theta = rng.uniform(0, np.pi / 2) if rng.random() < 0.6 else rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.05)
        u = np.cos(theta) * xx + np.sin(theta) * yy
        v = -np.sin(theta) * xx + np.cos(theta) * yy
        strip_width = rng.uniform(9, 20)
        strip = np.floor((u + rng.uniform(0, strip_width)) / strip_width).astype(int)
        plot = np.zeros_like(strip)
        for s in np.unique(strip):
            cut_len = rng.uniform(10, 30)
            plot[strip == s] = np.floor((v[strip == s] + rng.uniform(0, cut_len)) / cut_len).astype(int)
        parcel = strip * 1000 + plot
        # the farmland covers a half-plane (or everything), so towns/forests have room elsewhere
        if rng.random() < 0.5:
            a = rng.uniform(0, 2 * np.pi)
            region = (np.cos(a) * (xx - size / 2) + np.sin(a) * (yy - size / 2)) > rng.uniform(-20, 10)
        else:
            region = np.ones_like(labels, dtype=bool)
        for p in np.unique(parcel):
            if rng.random() < field_share:
                labels[(parcel == p) & region] = FIELD

    # forest blobs: thresholded smooth noise
    forest_share = rng.choice([0.0, 0.1, 0.25, 0.45], p=[0.15, 0.3, 0.35, 0.2])
    if forest_share > 0:
        n = smooth_noise(rng, size, rng.uniform(3.5, 7))
        labels[n > np.quantile(n, 1 - forest_share)] = FOREST

    # water: a lake with a smooth shore, or a river meandering across the image
    kind = rng.choice(["none", "lake", "river"], p=[0.35, 0.35, 0.3])
    if kind == "lake":
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(8, 22)
        shore = smooth_noise(rng, size, 5) * r * 0.25
        labels[np.hypot(yy - cy, xx - cx) < r + shore] = WATER
    elif kind == "river":
        river = np.zeros_like(labels, dtype=bool)
        _draw_polyline(river, _crossing_line(rng, size, bends=8, wobble=4.0), rng.uniform(3, 7))
        labels[river] = WATER

    # roads: one to three thin lines, each later road branching off an earlier one (connected)
    n_roads = rng.choice([0, 1, 2, 3], p=[0.15, 0.35, 0.35, 0.15])
    road = np.zeros_like(labels, dtype=bool)
    lines = []
    for k in range(n_roads):
        if k == 0:
            pts = _crossing_line(rng, size, bends=3, wobble=1.5)
        else:  # branch from a point on an earlier road towards a border
            base = lines[rng.integers(len(lines))]
            seg = rng.integers(len(base) - 1)
            start = base[seg] + rng.uniform(0.2, 0.8) * (base[seg + 1] - base[seg])
            d = base[seg + 1] - base[seg]
            angle = np.arctan2(d[0], d[1]) + rng.choice([-1, 1]) * rng.uniform(np.pi / 3, 2 * np.pi / 3)
            end = start + 2 * size * np.array([np.sin(angle), np.cos(angle)])
            pts = np.linspace(start, end, 4) + np.concatenate([[0], rng.normal(0, 1.0, 2), [0]])[:, None]
        lines.append(pts)
        _draw_polyline(road, pts, rng.choice([1.5, 2.0, 2.5]))
    labels[road] = ROAD

    # buildings: small axis-aligned rectangles set back 1-3 pixels from a road, on dry land
    if lines:
        density = rng.choice([0, 6, 14, 24], p=[0.2, 0.3, 0.3, 0.2])
        for _ in range(density):
            pts = lines[rng.integers(len(lines))]
            seg = rng.integers(len(pts) - 1)
            p = pts[seg] + rng.uniform(0, 1) * (pts[seg + 1] - pts[seg])
            d = pts[seg + 1] - pts[seg]
            normal = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-12)
            h, w = rng.integers(3, 6, 2)
            centre = p + rng.choice([-1, 1]) * normal * (rng.uniform(2.0, 4.0) + max(h, w) / 2)
            y0, x0 = int(round(centre[0] - h / 2)), int(round(centre[1] - w / 2))
            y0c, x0c, y1c, x1c = max(y0, 0), max(x0, 0), min(y0 + h, size), min(x0 + w, size)
            if y1c <= y0c or x1c <= x0c:
                continue
            patch = labels[y0c:y1c, x0c:x1c]
            if (patch == WATER).any() or (patch == ROAD).any():
                continue
            labels[y0c:y1c, x0c:x1c] = BUILDING
    return labels


# ------------------------------------------------------------------------------ rendering
def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(h.shape + (3,))
    for k, (r, g, b) in enumerate(choices):
        sel = i == k
        out[sel] = np.stack([r[sel], g[sel], b[sel]], -1) if np.ndim(r) else (r, g, b)
    return out


# per class: hue range (turns), saturation range, value range: wide so colours vary per image
_COLOUR_RANGES = {
    WATER: ((0.45, 0.68), (0.25, 0.75), (0.15, 0.55)),
    FOREST: ((0.20, 0.42), (0.35, 0.85), (0.12, 0.40)),
    GRASS: ((0.14, 0.33), (0.25, 0.65), (0.40, 0.75)),
    FIELD: ((0.06, 0.30), (0.20, 0.70), (0.40, 0.90)),
    ROAD: ((0.00, 1.00), (0.00, 0.12), (0.35, 0.75)),
    BUILDING: ((0.00, 1.00), (0.00, 0.60), (0.45, 0.98)),
}


def _class_colour(rng: np.random.Generator, cls: int) -> np.ndarray:
    (h0, h1), (s0, s1), (v0, v1) = _COLOUR_RANGES[cls]
    hsv = [np.array(rng.uniform(h0, h1)), np.array(rng.uniform(s0, s1)), np.array(rng.uniform(v0, v1))]
    return _hsv_to_rgb(*hsv).reshape(3)


def render(labels: np.ndarray, seed: int, noise: float | None = None) -> np.ndarray:
    """An aerial-looking RGB image [H, W, 3] uint8 of ``labels``; colours, textures and noise per seed."""
    rng = np.random.default_rng([seed, 0x8E4D])
    size = labels.shape[0]
    yy, xx = _grid(size)
    img = np.zeros((size, size, 3))
    for cls in range(NUM_CLASSES):
        img[labels == cls] = _class_colour(rng, cls)

    # field and grass parcels each get their own shade; fields get stripes (crop rows)
    theta = rng.uniform(0, np.pi)
    stripes = np.sin((np.cos(theta) * xx + np.sin(theta) * yy) * 2 * np.pi / rng.uniform(2.5, 5))
    fields = labels == FIELD
    if fields.any():
        # connected parcels are approximated by a coarse tiling: each tile shifts its shade
        tile = (np.floor(yy / rng.uniform(8, 16)) * 37 + np.floor(xx / rng.uniform(8, 16))).astype(int)
        for t in np.unique(tile[fields]):
            sel = fields & (tile == t)
            img[sel] *= rng.uniform(0.8, 1.2, 3)
        img[fields] *= (1 + rng.uniform(0.03, 0.1) * stripes[fields])[:, None]
    # textures: mottled canopy, faint grass texture, ripples on water, roof edges
    canopy = smooth_noise(rng, size, 0.8)
    grass_tex = smooth_noise(rng, size, 1.5)
    for cls, tex, amount in ((FOREST, canopy, 0.25), (GRASS, grass_tex, 0.08), (WATER, grass_tex, 0.04),
                             (FIELD, grass_tex, 0.05)):
        sel = labels == cls
        img[sel] *= (1 + amount * tex[sel])[:, None]
    # illumination gradient and a global colour balance (camera / season / haze)
    a = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0, 0.15) * ((np.cos(a) * (xx - size / 2) + np.sin(a) * (yy - size / 2)) / size)
    img *= light[..., None]
    img *= rng.uniform(0.85, 1.15, 3)
    img = img + rng.uniform(0, 0.12) * (np.array([0.8, 0.85, 0.9]) - img)  # haze
    img = _blur(img, rng.uniform(0.4, 0.8))
    sigma = rng.uniform(0.01, 0.04) if noise is None else noise
    img = img + rng.normal(0, sigma, img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# ------------------------------------------------------------------------------ coarse maps
def block_histograms(labels: np.ndarray, block: int) -> np.ndarray:
    """Class frequencies per block: [H/block, W/block, K]."""
    H, W = labels.shape
    if H % block or W % block:
        raise ValueError(f"block {block} does not divide the map size {H}×{W}")
    onehot = np.eye(NUM_CLASSES)[labels]
    return onehot.reshape(H // block, block, W // block, block, NUM_CLASSES).mean((1, 3))


def coarse_map(labels: np.ndarray, seed: int, block: int = 16, wrong: float = 0.1) -> np.ndarray:
    """Majority class per ``block``×``block`` block, with a fraction ``wrong`` of blocks replaced by
    the block's second most frequent class (or a random class when only one is present)."""
    rng = np.random.default_rng([seed, 0xC0A5])
    hist = block_histograms(labels, block)
    order = np.argsort(-hist, axis=-1, kind="stable")
    coarse = order[..., 0].copy()
    flip = rng.random(coarse.shape) < wrong
    for i, j in zip(*np.nonzero(flip)):
        if hist[i, j, order[i, j, 1]] > 0:
            coarse[i, j] = order[i, j, 1]
        else:
            coarse[i, j] = rng.choice([c for c in range(NUM_CLASSES) if c != coarse[i, j]])
    return coarse


def scene(seed: int, size: int = 64, block: int = 16, wrong: float = 0.1) -> Scene:
    """Scene ``seed``: its label map, rendered image and coarse map."""
    labels = label_map(seed, size)
    return Scene(seed, labels, render(labels, seed), coarse_map(labels, seed, block, wrong), block)


def colourise(labels: np.ndarray) -> np.ndarray:
    """A label map [H, W] as display colours [H, W, 3] uint8 (:data:`PALETTE`)."""
    return PALETTE[np.asarray(labels)]


# ------------------------------------------------------------------------------ seed ranges
# Disjoint seed ranges, so no scene used to train the prior or to tune a recipe is evaluated.
SEED_RANGES = {
    "train": (0, 1_000_000),            # prior training data
    "validation": (1_000_000, 1_100_000),  # tuning of weights / steps
    "test": (2_000_000, 2_100_000),     # benchmarks only
}


def split_seeds(split: str, count: int, offset: int = 0) -> list[int]:
    """The first ``count`` seeds (from ``offset``) of a split: train, validation or test."""
    if split not in SEED_RANGES:
        raise ValueError(f"unknown split {split!r}: use one of {sorted(SEED_RANGES)}")
    lo, hi = SEED_RANGES[split]
    if lo + offset + count > hi:
        raise ValueError(f"split {split!r} has {hi - lo} seeds; asked for {offset}..{offset + count}")
    return list(range(lo + offset, lo + offset + count))
