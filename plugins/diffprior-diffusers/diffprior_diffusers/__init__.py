"""diffusers UNet2DModel pipelines and guided-diffusion (ADM) checkpoints as diffprior priors.

The hook module :mod:`diffprior_diffusers.plugin` imports neither torch nor diffusers; the
loaders below are imported lazily (``from diffprior_diffusers import load_diffusers_prior``).
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "DiffusersPrior": "diffprior_diffusers.prior",
    "eps_from_prediction": "diffprior_diffusers.prior",
    "betas_from_scheduler_config": "diffprior_diffusers.schedule",
    "load_diffusers_prior": "diffprior_diffusers.loading",
    "convert_adm_state_dict": "diffprior_diffusers.adm",
    "adm_unet_config": "diffprior_diffusers.adm",
    "load_guided_diffusion_prior": "diffprior_diffusers.adm",
    "save_converted": "diffprior_diffusers.converted",
    "describe_prior": "diffprior_diffusers.converted",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'diffprior_diffusers' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
