"""ADM-style U-Net priors for diffprior.

The heavy pieces are imported lazily (``from diffprior_unet import UNet`` imports torch; the
plugin hook module :mod:`diffprior_unet.plugin` does not).
"""

from __future__ import annotations

from diffprior import lazy_exports

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

__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, also=["__version__"])
