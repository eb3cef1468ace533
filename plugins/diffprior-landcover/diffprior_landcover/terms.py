"""The land-cover terms: ``nmi`` (labels vs local colour clusters) and ``lowres-kl`` (labels vs
a coarse map). Both take label probabilities p [B, K, H, W] (what ``simplex-labels`` gives terms).

NMI: the image is cut into sliding windows; in each window a k-component Gaussian mixture
(diagonal covariances) is fit to the pixel colours by EM, once, when the term is built. Its
soft responsibilities r [n, k] and the labels p [n, c] of the window's pixels give a joint
distribution P(c, k) = mean_n p_nc·r_nk, and

    NMI = 2·I(C; K) / (H(C) + H(K)),

which is 1 when the labels are a relabelling of the clusters, 0 when they are independent,
and does not care which colour means which class. log c is the mean NMI over windows,
differentiable in p. LowresKL compares average-pooled p with a per-block class distribution
made from the coarse map.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from diffprior import Term


# ------------------------------------------------------------------------------ windows and EM
def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of ``window`` pixels every ``stride`` pixels, the last one flush with
    the border, so every pixel is covered."""
    if window >= size:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def unfold_windows(x: torch.Tensor, window: int, stride: int) -> torch.Tensor:
    """[B, C, H, W] → [B, N_windows, n_pixels, C] (windows as in :func:`window_starts`)."""
    B, C, H, W = x.shape
    wy, wx = min(window, H), min(window, W)
    ys, xs = window_starts(H, wy, stride), window_starts(W, wx, stride)
    patches = [x[:, :, y:y + wy, x0:x0 + wx].reshape(B, C, -1) for y in ys for x0 in xs]
    return torch.stack(patches, 1).transpose(2, 3)


@torch.no_grad()
def fit_gmm(points: torch.Tensor, k: int, iterations: int = 20, min_var: float = 1e-4) -> torch.Tensor:
    """EM for a k-component diagonal Gaussian mixture, batched over leading dimensions.

    ``points`` [..., n, d] → responsibilities [..., n, k]. Deterministic: the means start at
    the (j + ½)/k quantiles of the points' projection on their first principal axis.
    """
    pts = points.float()
    *lead, n, d = pts.shape
    centred = pts - pts.mean(-2, keepdim=True)
    cov = centred.transpose(-1, -2) @ centred / n
    _, vecs = torch.linalg.eigh(cov)
    axis = vecs[..., -1]  # [..., d]
    proj = (centred * axis.unsqueeze(-2)).sum(-1)  # [..., n]
    order = proj.argsort(-1)
    picks = ((torch.arange(k, dtype=torch.float32) + 0.5) / k * n).long().clamp(max=n - 1)
    idx = order[..., picks]  # [..., k]
    means = torch.gather(pts, -2, idx.unsqueeze(-1).expand(*lead, k, d))
    var = centred.pow(2).mean(-2, keepdim=True).expand(*lead, k, d).clone().clamp_min(min_var)
    weights = torch.full((*lead, k), 1.0 / k)
    squares = pts.pow(2)
    for _ in range(iterations):
        # log N(x | μ, diag v) for every point and component through matmuls (no [n, k, d] tensor)
        inv = 1.0 / var
        quad = squares @ inv.transpose(-1, -2) - 2 * pts @ (means * inv).transpose(-1, -2) + (means.pow(2) * inv).sum(-1).unsqueeze(-2)
        log_p = -0.5 * (quad + var.log().sum(-1).unsqueeze(-2) + d * math.log(2 * math.pi))
        log_p = log_p + weights.clamp_min(1e-12).log().unsqueeze(-2)
        # softmax over k by hand: torch.softmax over a last dimension of size 5 is slow on CPU
        e = (log_p - log_p.amax(-1, keepdim=True)).exp()
        resp = e / e.sum(-1, keepdim=True)  # [..., n, k]
        mass = resp.sum(-2).clamp_min(1e-12)  # [..., k]
        weights = mass / n
        means = (resp.transpose(-1, -2) @ pts) / mass.unsqueeze(-1)
        var = ((resp.transpose(-1, -2) @ squares) / mass.unsqueeze(-1) - means.pow(2)).clamp_min(min_var)
    return resp.float()


def local_clusters(image: torch.Tensor, k: int, window: int, stride: int, iterations: int = 20) -> torch.Tensor:
    """Soft colour clusters of each window of ``image`` [B, 3, H, W]: [B, N_windows, n_pixels, k]."""
    return fit_gmm(unfold_windows(image, window, stride), k, iterations)


def nmi(labels: torch.Tensor, clusters: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """NMI per window between label probabilities [..., n, C] and responsibilities [..., n, k]: [...]."""
    n = labels.shape[-2]
    joint = labels.transpose(-1, -2) @ clusters / n  # [..., C, k]
    pc, pk = joint.sum(-1), joint.sum(-2)
    h_c = -(pc * (pc + eps).log()).sum(-1)
    h_k = -(pk * (pk + eps).log()).sum(-1)
    mi = (joint * ((joint + eps).log() - (pc.unsqueeze(-1) * pk.unsqueeze(-2) + eps).log())).sum((-1, -2))
    return 2 * mi / (h_c + h_k).clamp_min(eps)


def batch_rows(stack: torch.Tensor, batch: int, what: str) -> torch.Tensor:
    """Sample i of a batch uses row i of ``stack`` (one row is shared by every sample)."""
    n = stack.shape[0]
    if n == 1:
        return stack.expand(batch, *stack.shape[1:])
    if n >= batch:
        return stack[:batch]
    raise ValueError(f"{what} holds {n} scenes but the batch has {batch} samples: give one scene per sample or a single scene")


class LocalNMI(Term):
    """log c = mean over windows of NMI(labels, local colour clusters). ``images`` [N, 3, H, W] in
    [0, 1]: sample i uses image i (a single image is shared by all samples). The clusters of an
    image are fit the first time a batch needs it, and kept."""

    def __init__(self, config, ctx, images: torch.Tensor):
        super().__init__(config, ctx)
        self.k, self.window, self.stride = config.clusters, config.window, config.stride
        self.iterations = config.em_iterations
        self.images = images.float().cpu()
        self.device = getattr(ctx, "device", "cpu")
        self.image_shape = tuple(images.shape[-2:])
        self._clusters: torch.Tensor | None = None

    def clusters_for(self, batch: int) -> torch.Tensor:
        rows = 1 if self.images.shape[0] == 1 else batch
        if self._clusters is None or self._clusters.shape[0] < rows:
            fitted = local_clusters(batch_rows(self.images, rows, "term nmi").contiguous(), self.k, self.window,
                                    self.stride, self.iterations)
            self._clusters = fitted.to(self.device)
        return batch_rows(self._clusters, batch, "term nmi")

    def per_window(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.image_shape:
            raise ValueError(f"term nmi: label maps are {tuple(x.shape[-2:])} but the image is {self.image_shape}")
        windows = unfold_windows(x, self.window, self.stride)  # [B, N, n, C]
        return nmi(windows, self.clusters_for(x.shape[0]).to(x.dtype))

    def log_c(self, x):
        return self.per_window(x).mean(-1)

    def metrics(self, x):
        return {"nmi": self.per_window(x).mean(-1)}


# ------------------------------------------------------------------------------ low-resolution prior
def coarse_distribution(coarse: torch.Tensor, classes: int, table: torch.Tensor | None = None,
                        confidence: float = 0.8) -> torch.Tensor:
    """Per-block class distributions [B, K, h, w] from coarse class indices [B, h, w].

    With ``table`` [K, K] (row a: the class distribution inside a block labelled a), each
    block gets its row; otherwise ``confidence`` on the labelled class and the rest spread evenly.
    """
    if table is None:
        off = (1 - confidence) / max(classes - 1, 1)
        table = torch.full((classes, classes), off)
        table.fill_diagonal_(confidence)
    table = table / table.sum(1, keepdim=True)
    return table.to(coarse.device)[coarse.long()].permute(0, 3, 1, 2).contiguous()


class LowresKL(Term):
    """log c = −mean over blocks of KL between the coarse prior π and the pooled labels q (or the
    reverse, ``direction = "labels-to-prior"``). ``prior`` [B or 1, K, h, w]: class distributions."""

    def __init__(self, config, ctx, prior: torch.Tensor):
        super().__init__(config, ctx)
        self.prior = prior.float().clamp_min(config.floor).to(getattr(ctx, "device", "cpu"))
        self.prior = self.prior / self.prior.sum(1, keepdim=True)
        self.pool, self.stride, self.direction = config.pool, config.pool_stride, config.direction

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Average-pooled label probabilities on the coarse grid: [B, K, h, w]."""
        H = x.shape[-1]
        h = self.prior.shape[-1]
        pool = self.pool or H // h
        stride = self.stride or pool
        if pool == stride:
            q = F.avg_pool2d(x, pool, stride)
        else:  # overlapping windows centred on the blocks: pad by reflection so every block has one
            pad = (pool - stride) // 2
            q = F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), pool, stride)
        if q.shape[-2:] != self.prior.shape[-2:]:
            raise ValueError(f"term lowres-kl: pooling {tuple(x.shape[-2:])} label maps with window {pool}, stride "
                             f"{stride} gives {tuple(q.shape[-2:])} blocks but the coarse map has {tuple(self.prior.shape[-2:])}")
        return q

    def per_block(self, x: torch.Tensor) -> torch.Tensor:
        q = self.pooled(x).clamp_min(1e-6)
        q = q / q.sum(1, keepdim=True)
        prior = batch_rows(self.prior, x.shape[0], "term lowres-kl")
        if self.direction == "prior-to-labels":
            kl = (prior * (prior.log() - q.log())).sum(1)
        else:
            kl = (q * (q.log() - prior.log())).sum(1)
        return kl.flatten(1)

    def log_c(self, x):
        return -self.per_block(x).mean(-1)

    def metrics(self, x):
        return {"kl": self.per_block(x).mean(-1)}
