"""Tour images (the paper's 64×64 recipe), rasterised in torch without OpenCV.

A city at (x, y) ∈ [0, 1]² sits at pixel (row, col) = ⌊(size − 1)·(y, x)⌋. Background is −1,
tour edges (thickness 2: pixels within distance 1 of the segment between two city pixels)
are 0, cities (discs of radius 2) are +1. Training images and the ``tsp-edges`` variable
use the same masks, so what the prior learned is what the variable can draw.
"""

from __future__ import annotations

import torch

IMAGE_SIZE = 64
LINE_THICKNESS = 2.0
CITY_RADIUS = 2.0


def city_pixels(coords: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Integer pixel centres (row, col) of cities [..., 2] with coordinates (x, y)."""
    return ((size - 1) * coords.flip(-1)).floor().clamp(0, size - 1)


def _pixel_grid(size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column coordinates [size²] of every pixel (float32: integers up to 2^24 are exact)."""
    index = torch.arange(size * size, device=device)
    return (index // size).float(), (index % size).float()


def segment_masks(starts: torch.Tensor, ends: torch.Tensor, size: int = IMAGE_SIZE,
                  thickness: float = LINE_THICKNESS) -> torch.Tensor:
    """Boolean masks [K, size²] of the pixels within thickness/2 of each segment (pixel coords [K, 2])."""
    rows, cols = _pixel_grid(size, starts.device)
    a_r, a_c = starts[:, 0:1].float(), starts[:, 1:2].float()  # [K, 1]
    d_r, d_c = ends[:, 0:1].float() - a_r, ends[:, 1:2].float() - a_c
    length2 = (d_r * d_r + d_c * d_c).clamp_min(1e-12)
    # row/column components kept apart: far faster than [K, size², 2] tensors
    p_r, p_c = rows[None] - a_r, cols[None] - a_c  # [K, size²]
    s = ((p_r * d_r + p_c * d_c) / length2).clamp_(0, 1)  # projection onto the segment
    p_r.sub_(s * d_r)
    p_c.sub_(s * d_c)
    return p_r * p_r + p_c * p_c <= (thickness / 2) ** 2 + 1e-4


def city_masks(coords: torch.Tensor, size: int = IMAGE_SIZE, radius: float = CITY_RADIUS) -> torch.Tensor:
    """Boolean [B, size²]: pixels covered by any city disc of each instance (coords [B, N, 2])."""
    rows, cols = _pixel_grid(size, coords.device)
    centres = city_pixels(coords.double(), size).float()  # [B, N, 2]
    dist2 = (rows - centres[..., 0:1]) ** 2 + (cols - centres[..., 1:2]) ** 2  # [B, N, size²]
    return (dist2 <= radius**2 + 1e-4).any(1)


def render_tours(coords: torch.Tensor, tours: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Images [B, 1, size, size] in [−1, 1] of closed tours (coords [B, N, 2], tours [B, N] 0-based)."""
    coords = torch.as_tensor(coords, dtype=torch.float64)
    tours = torch.as_tensor(tours, dtype=torch.long)
    B = coords.shape[0]
    pixels = city_pixels(coords, size)
    ordered = torch.gather(pixels, 1, tours[..., None].expand(-1, -1, 2))
    image = torch.full((B, size * size), -1.0)
    for b in range(B):  # one instance at a time keeps the [N, size²] masks small
        on_edge = segment_masks(ordered[b], ordered[b].roll(-1, 0), size).any(0)
        image[b, on_edge] = 0.0
    image[city_masks(coords, size)] = 1.0
    return image.view(B, 1, size, size).float()


def pair_indices(n: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(i, j) of the n(n−1)/2 unordered city pairs, i < j."""
    return torch.triu_indices(n, n, offset=1, device=device).unbind(0)


class EdgeImages:
    """The pre-rasterised edge images E_ij of a batch of instances, stored sparsely.

    ``entry_pair[k]`` is the flat index b·P + p of the pair whose segment covers pixel
    ``entry_pixel[k]`` = b·size² + pixel, with P = N(N−1)/2 pairs per instance. A weighted sum
    of edge images is then one gather and one ``index_add`` (cheap, and differentiable).
    """

    def __init__(self, coords: torch.Tensor, size: int = IMAGE_SIZE, device=None):
        coords = torch.as_tensor(coords, dtype=torch.float64)
        B, n = coords.shape[:2]
        self.size, self.batch, self.n = size, B, n
        i, j = pair_indices(n)
        self.pair_i, self.pair_j = i.to(device), j.to(device)
        self.pairs = i.shape[0]
        pixels = city_pixels(coords, size)
        pair_ids, pixel_ids = [], []
        for b in range(B):
            mask = segment_masks(pixels[b, i], pixels[b, j], size)  # [P, size²]
            p, k = mask.nonzero(as_tuple=True)
            pair_ids.append(p + b * self.pairs)
            pixel_ids.append(k + b * size * size)
        self.entry_pair = torch.cat(pair_ids).to(device)
        self.entry_pixel = torch.cat(pixel_ids).to(device)
        self.city_mask = city_masks(coords, size).to(device)  # [B, size²]

    def weighted_sum(self, pair_weights: torch.Tensor) -> torch.Tensor:
        """Σ_p w_bp · E_p per instance: pair weights [B, P] → [B, size²].

        The edge images of a single instance serve any number of samples (restarts of one
        instance): every row of ``pair_weights`` is drawn on the same cities."""
        if self.batch == 1 and pair_weights.shape[0] != 1:
            values = pair_weights[:, self.entry_pair]  # entry_pair is p when there is one instance
            total = torch.zeros(pair_weights.shape[0], self.size * self.size, dtype=values.dtype, device=values.device)
            return total.index_add(1, self.entry_pixel, values)
        total = torch.zeros(self.batch * self.size * self.size, dtype=pair_weights.dtype, device=pair_weights.device)
        total = total.index_add(0, self.entry_pixel, pair_weights.reshape(-1)[self.entry_pair])
        return total.view(self.batch, -1)
