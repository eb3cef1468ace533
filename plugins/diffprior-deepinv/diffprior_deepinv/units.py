"""The one place where diffprior's image scale meets deepinv's.

diffprior's image priors model x in [−1, 1]; deepinv's operators, noise levels and denoisers
work on u in [0, 1]. Everything in this plugin converts through these functions:

    u = (x + 1) / 2,    x = 2u − 1,    σ_x = 2·σ_u   (a noise std scales with the image)

so a measurement file, a ``sigma`` in a config and a noise level handed to a deepinv
Denoiser are always on the [0, 1] scale.
"""

from __future__ import annotations

SCALE = 2.0  # length of [−1, 1] over length of [0, 1]


def to_unit(x):
    """diffprior's [−1, 1] image → deepinv's [0, 1]."""
    return (x + 1.0) / SCALE


def from_unit(u):
    """deepinv's [0, 1] image → diffprior's [−1, 1]."""
    return u * SCALE - 1.0


def sigma_from_unit(sigma_u):
    """A noise std on the [0, 1] scale → the same noise on the [−1, 1] scale."""
    return sigma_u * SCALE
