"""The small digit networks: a classifier (3 stride-2 convs, as the paper's) and a stroke segmenter.

Both take [B, 1, 32, 32] images in [-1, 1]. ``ARCHITECTURES`` maps the ``arch`` name stored in
a bundled model's json to its class, so weights and code stay in step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _ConvClassifier(nn.Module):
    """Convolution blocks, a hidden layer (the ``features``) and class logits; subclasses give
    the blocks and the activation."""

    activation = staticmethod(F.silu)

    def __init__(self, blocks: list[nn.Module], c_out: int, hidden: int, num_classes: int, side: int, dropout: float):
        super().__init__()
        self.convs = nn.Sequential(*blocks)
        self.hidden = nn.Linear(c_out * side * side, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.hidden(self.convs(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


class DigitCNN(_ConvClassifier):
    """Stride-2 convolutions, a hidden layer (the ``features``) and class logits."""

    def __init__(self, channels=(32, 64, 128), hidden: int = 64, num_classes: int = 10, in_chans: int = 1,
                 size: int = 32, dropout: float = 0.0):
        layers, c_in = [], in_chans
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.SiLU()]
            c_in = c
        super().__init__(layers, c_in, hidden, num_classes, size // 2 ** len(channels), dropout)


class PoolCNN(_ConvClassifier):
    """VGG-style blocks (two 3×3 convs, ReLU, 2×2 max-pool), a hidden layer (the ``features``)
    and class logits. The judge's architecture: deliberately unlike the guidance ``DigitCNN``
    (stride-2 convs, SiLU), so that an image tuned against one is not tuned against the other."""

    activation = staticmethod(F.relu)

    def __init__(self, channels=(32, 64, 128), hidden: int = 128, num_classes: int = 10, in_chans: int = 1,
                 size: int = 32, dropout: float = 0.3):
        layers, c_in = [], in_chans
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        super().__init__(layers, c_in, hidden, num_classes, size // 2 ** len(channels), dropout)


class StrokeSegmenter(nn.Module):
    """A small U-Net: per-pixel logits over ``num_classes`` labels (0 = background)."""

    def __init__(self, width: int = 24, num_classes: int = 11, in_chans: int = 1):
        super().__init__()
        w = width

        def block(c_in, c_out, stride=1):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.SiLU())

        self.enc1 = block(in_chans, w)            # 32
        self.enc2 = block(w, 2 * w, stride=2)     # 16
        self.enc3 = block(2 * w, 4 * w, stride=2)  # 8
        self.enc4 = block(4 * w, 4 * w, stride=2)  # 4: sees the whole digit (which class it is)
        self.dec3 = block(8 * w, 4 * w)
        self.dec2 = block(6 * w, 2 * w)
        self.dec1 = block(3 * w, w)
        self.out = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        up = lambda t, like: F.interpolate(t, size=like.shape[-2:], mode="nearest")
        d3 = self.dec3(torch.cat([up(e4, e3), e3], 1))
        d2 = self.dec2(torch.cat([up(d3, e2), e2], 1))
        d1 = self.dec1(torch.cat([up(d2, e1), e1], 1))
        return self.out(d1)


ARCHITECTURES = {"digit-cnn": DigitCNN, "pool-cnn": PoolCNN, "stroke-segmenter": StrokeSegmenter}


def stroke_labels(images: torch.Tensor, digits: torch.Tensor | None = None, threshold: float = 0.0) -> torch.Tensor:
    """Per-pixel labels of digit images in [-1, 1]: 0 background, 1 + digit on stroke pixels.

    Without ``digits`` every stroke pixel is labelled 1 (stroke / background only).
    """
    stroke = images[:, 0] > threshold
    fill = torch.ones(len(images), dtype=torch.long, device=images.device) if digits is None else digits.long() + 1
    return torch.where(stroke, fill.view(-1, 1, 1), torch.zeros((), dtype=torch.long, device=images.device))
