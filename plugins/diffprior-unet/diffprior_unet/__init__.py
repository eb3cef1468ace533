"""ADM-style U-Net priors for diffprior.

The heavy pieces are imported lazily (``from diffprior_unet import UNet`` imports torch; the
plugin hook module :mod:`diffprior_unet.plugin` does not).
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "UNet": "diffprior_unet.model",
    "UNetPrior": "diffprior_unet.prior",
    "UNetArchitecture": "diffprior_unet.config",
    "TrainConfig": "diffprior_unet.training",
    "train": "diffprior_unet.training",
    "load_train_config": "diffprior_unet.training",
    "save_checkpoint": "diffprior_unet.checkpoints",
    "load_checkpoint": "diffprior_unet.checkpoints",
    "load_prior": "diffprior_unet.checkpoints",
    "bundled_names": "diffprior_unet.checkpoints",
    "resolve_checkpoint": "diffprior_unet.checkpoints",
    "read_metadata": "diffprior_unet.checkpoints",
    "plugin_metadata": "diffprior_unet.checkpoints",
    "set_plugin_metadata": "diffprior_unet.checkpoints",
    "copy_checkpoint": "diffprior_unet.checkpoints",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'diffprior_unet' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
