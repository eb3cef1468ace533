"""What a deepinv operator is, as data: the operators, their parameters and noise models.

Shared by the ``physics`` term (plugin.py) and ``diffprior deepinv simulate`` (commands.py).
No torch and no deepinv at import time.
"""

from __future__ import annotations

import difflib
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from diffprior import ExistingPath

OPERATORS = ("inpainting", "downsampling", "blur", "compressed-sensing", "denoising")
FILTERS = ("bicubic", "bilinear", "gaussian", "sinc", "none")
KERNELS = ("gaussian", "box")
NOISE_MODELS = ("gaussian", "poisson", "none")
FIDELITIES = ("l2", "l1", "poisson")


def unknown_operator_message(value: str) -> str:
    close = difflib.get_close_matches(str(value), OPERATORS, n=1)
    return (f"unknown operator {value!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            + f"; use one of {', '.join(OPERATORS)}")


class OperatorSpec(BaseModel):
    """A deepinv Physics: the operator A with its parameters and its noise model.

    All values are on deepinv's [0, 1] image scale (``sigma`` is a noise std of a [0, 1]
    image); see :mod:`diffprior_deepinv.units` for the one place where diffprior's [−1, 1] is
    converted. Parameters of other operators than the chosen one are ignored.

    - ``inpainting``: ``mask`` (a .safetensors file with a ``mask`` tensor, or .npy; 1 = observed)
      or ``ratio`` (fraction of pixels observed, drawn with ``seed``).
    - ``downsampling``: ``factor`` and anti-aliasing ``filter``.
    - ``blur``: ``kernel`` (``gaussian``: std ``width`` pixels; ``box``: ``width`` pixels square),
      circular convolution (deepinv's BlurFFT).
    - ``compressed-sensing``: ``measurements`` random Gaussian projections of the whole image, drawn with ``seed``.
    - ``denoising``: A = identity.

    Noise: ``gaussian`` with std ``sigma``, ``poisson`` with ``gain`` (y = gain·Poisson(A(x)/gain)), or ``none``.
    """

    model_config = ConfigDict(extra="forbid")
    operator: str = Field(..., description="inpainting | downsampling | blur | compressed-sensing | denoising")
    mask: Optional[ExistingPath] = Field(None, description="inpainting: mask file (1 = observed pixel)")
    ratio: Optional[float] = Field(None, gt=0.0, le=1.0, description="inpainting: fraction of observed pixels, random")
    seed: int = Field(0, ge=0, description="seed of a random mask or compressed-sensing matrix")
    factor: int = Field(2, ge=1, description="downsampling factor")
    filter: Literal[FILTERS] = "bicubic"  # type: ignore[valid-type]
    kernel: Literal[KERNELS] = "gaussian"  # type: ignore[valid-type]
    width: float = Field(1.0, gt=0.0, description="blur: Gaussian std or box size, in pixels")
    measurements: Optional[int] = Field(None, gt=0, description="compressed sensing: number of projections")
    noise: Literal[NOISE_MODELS] = "gaussian"  # type: ignore[valid-type]
    sigma: float = Field(0.05, gt=0.0, description="Gaussian noise std on the [0, 1] scale")
    gain: float = Field(1.0 / 255, gt=0.0, description="Poisson gain: y = gain·Poisson(A(x)/gain)")

    @field_validator("operator")
    @classmethod
    def _known_operator(cls, value):
        if value not in OPERATORS:
            raise ValueError(unknown_operator_message(value))
        return value

    @model_validator(mode="after")
    def _parameters_given(self):
        if self.operator == "inpainting" and (self.mask is None) == (self.ratio is None):
            raise ValueError("inpainting needs exactly one of mask = 'FILE' or ratio = FRACTION_OBSERVED")
        if self.operator == "compressed-sensing" and self.measurements is None:
            raise ValueError("compressed-sensing needs measurements = M (number of random projections)")
        return self

    def build_physics(self, shape, device="cpu"):
        """The deepinv Physics for images of ``shape`` [C, H, W] (imports deepinv)."""
        from .physics import build_physics

        return build_physics(self, tuple(shape), device)
