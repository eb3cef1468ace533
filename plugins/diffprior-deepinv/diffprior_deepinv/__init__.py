"""diffprior-deepinv: deepinv operators as diffprior terms, and diffprior priors as deepinv denoisers.

Importing the package imports neither torch nor deepinv; ``as_denoiser`` does when called.
"""


def as_denoiser(prior, *, clip: bool = False):
    """Any diffprior prior as a ``deepinv.models.Denoiser`` (Tweedie's formula); see :mod:`diffprior_deepinv.denoiser`."""
    from .denoiser import as_denoiser as build

    return build(prior, clip=clip)


__all__ = ["as_denoiser"]
