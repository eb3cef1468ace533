"""diffusers UNet2DModel pipelines and guided-diffusion (ADM) checkpoints as diffprior priors.

The hook module :mod:`diffprior_diffusers.plugin` imports neither torch nor diffusers; the
loaders below are imported lazily (``from diffprior_diffusers import load_diffusers_prior``).
"""

from __future__ import annotations

from diffprior import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "DiffusersPrior": "diffprior_diffusers.prior",
    "eps_from_prediction": "diffprior_diffusers.prior",
    "betas_from_scheduler_config": "diffprior_diffusers.schedule",
    "load_diffusers_prior": "diffprior_diffusers.load",
    "convert_adm_state_dict": "diffprior_diffusers.adm",
    "adm_unet_config": "diffprior_diffusers.adm",
    "load_guided_diffusion_prior": "diffprior_diffusers.adm",
    "save_converted": "diffprior_diffusers.converted",
    "describe_prior": "diffprior_diffusers.converted",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, also=["__version__"])
