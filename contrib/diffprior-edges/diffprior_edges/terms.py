"""The torch side of diffprior-edges: image gradients, total variation, edge alignment."""

from __future__ import annotations

import math

import torch

from diffprior import ConfigError, Term, check_image_shape


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along width and height, zero on the last column/row ([B, C, H, W])."""
    dx = torch.nn.functional.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    dy = torch.nn.functional.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return dx, dy


def gradient_magnitude(x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Smoothed |∇x| per pixel, channels pooled: √(mean_c(∂x² + ∂y²) + ε²) − ε, shape [B, H, W]."""
    dx, dy = image_gradients(x)
    return ((dx**2 + dy**2).mean(dim=1) + epsilon**2).sqrt() - epsilon


class TotalVariation(Term):
    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        check_image_shape(ctx, "tv")
        self.epsilon = config.epsilon
        self.isotropic = config.norm == "isotropic"

    def variation(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample total variation summed over pixels, shape [B]."""
        if self.isotropic:
            return gradient_magnitude(x, self.epsilon).flatten(1).sum(1)
        dx, dy = image_gradients(x)
        smooth_abs = lambda d: (d**2 + self.epsilon**2).sqrt() - self.epsilon  # noqa: E731
        return (smooth_abs(dx) + smooth_abs(dy)).flatten(1).sum(1)

    def log_c(self, x):
        return -self.variation(x)

    def metrics(self, x):
        return {"tv_per_pixel": self.variation(x) / x[0].numel()}


def outline(shape: str, height: int, width: int, size: float, line_width: float) -> torch.Tensor:
    """A soft outline centred in an H×W image: exp(−d²/2σ²) with d the distance to the curve."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    dy, dx = ys - (height - 1) / 2, xs - (width - 1) / 2
    radius = size * min(height, width)
    if shape == "circle":
        level = (dx**2 + dy**2).sqrt()
    elif shape == "square":
        level = torch.maximum(dx.abs(), dy.abs())
    elif shape == "diamond":
        level = (dx.abs() + dy.abs()) / math.sqrt(2)
    else:
        raise ConfigError(f"terms: unknown edges outline {shape!r}")
    return torch.exp(-((level - radius) ** 2) / (2 * line_width**2))


def load_edge_map(path, channels: int, height: int, width: int, epsilon: float) -> torch.Tensor:
    """An edge map [H, W] from a safetensors file's ``edges`` tensor or ``image`` tensor."""
    from diffprior import load_tensors

    tensors = load_tensors(path, what="terms: edge map")
    if "edges" in tensors:
        edges = tensors["edges"].float()
        edges = edges.mean(0) if edges.dim() == 3 else edges
    elif "image" in tensors:
        image = tensors["image"].float()
        image = image.reshape(1, *([1] if image.dim() == 2 else []), *image.shape)
        edges = gradient_magnitude(image, epsilon)[0]
    else:
        raise ConfigError(f"terms: edges target {path} has neither an 'edges' nor an 'image' tensor (it has {sorted(tensors)})")
    if tuple(edges.shape) != (height, width):
        raise ConfigError(f"terms: edges target {path} is {tuple(edges.shape)}, but the prior's images are {height}×{width}")
    if (edges < 0).any() or not torch.isfinite(edges).all() or edges.max() <= 0:
        raise ConfigError(f"terms: edges target {path} must be finite, non-negative and not all zero")
    return edges / edges.max()


class EdgeAlignment(Term):
    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        channels, height, width = check_image_shape(ctx, "edges")
        if isinstance(config.target, str):
            edges = outline(config.target, height, width, config.size, config.width)
        else:
            edges = load_edge_map(config.target, channels, height, width, config.epsilon)
        self.edges = edges.to(ctx.device)
        self.epsilon = config.epsilon

    def correlation(self, x: torch.Tensor) -> torch.Tensor:
        """Pearson correlation between |∇x| and E over pixels, per sample, in [-1, 1]."""
        magnitude = gradient_magnitude(x, self.epsilon).flatten(1)
        magnitude = magnitude - magnitude.mean(dim=1, keepdim=True)
        edges = self.edges.flatten().to(magnitude.dtype)
        edges = edges - edges.mean()
        return (magnitude @ edges) / (magnitude.norm(dim=1) * edges.norm() + 1e-12)

    def log_c(self, x):
        return x[0, 0].numel() * self.correlation(x)

    def metrics(self, x):
        return {"edge_correlation": self.correlation(x)}
