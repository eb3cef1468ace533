"""Hook implementations and config models of diffprior-deepinv.

No torch and no deepinv at import time (``diffprior --help`` stays fast): the ``physics``
term's ``build`` and the ``deepinv`` command import them when they run.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from diffprior import ExistingPath, TermConfig, resolve_path
from diffprior import hookimpl

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


class PhysicsConfig(TermConfig, OperatorSpec):
    """A measurement y = N(A(x)) of the image through a deepinv operator (see OperatorSpec).

    log c = −‖A(u) − y‖² / (2σ²) with u = (x + 1)/2 the image on deepinv's [0, 1] scale
    (``fidelity = "l2"``, the Gaussian log-likelihood up to a constant); ``"l1"``:
    −‖A(u) − y‖₁ / σ (Laplace); ``"poisson"``: deepinv's Poisson log-likelihood with ``gain``.

    ``target``: the measurement, a .safetensors file (tensor ``key``, default ``measurement``,
    as ``diffprior deepinv simulate`` writes it) or a .npy file. Of the operator's output
    shape, every sample sees it; with one more leading dimension, sample i sees row
    ``ctx.indices[i]`` (sample i of the whole run, across shards).

    Units: ``reduce = "mean"`` (default) divides log c by the number of pixels of x, the units
    of the core's prior term (a per-pixel mean), so weight 1 is the posterior at the
    measurement's true noise level; ``reduce = "sum"`` keeps the per-image sum (the units of
    the paper's free energy and of ``match``). Default weight 1, no clipping. Metric:
    ``residual``, the root-mean-square of A(u) − y (about σ when x explains y).
    """

    type: Literal["physics"] = "physics"
    default_weight: ClassVar = 1.0
    default_clip: ClassVar = "none"
    target: Path = Field(..., description="measurement file (.safetensors or .npy)")
    key: str = Field("measurement", description="tensor name in a .safetensors target")
    fidelity: Literal[FIDELITIES] = "l2"  # type: ignore[valid-type]
    reduce: Literal["mean", "sum"] = "mean"

    @field_validator("target", mode="before")
    @classmethod
    def _target_file(cls, value, info: ValidationInfo):
        return resolve_path(value, info)

    def build(self, ctx):
        from .term import PhysicsTerm

        return PhysicsTerm(self, ctx)


@hookimpl
def register_terms(register):
    register(PhysicsConfig)


@hookimpl
def register_commands(register):
    from .commands import DEEPINV_COMMAND  # argparse wiring only: no torch, no deepinv

    register(DEEPINV_COMMAND)
