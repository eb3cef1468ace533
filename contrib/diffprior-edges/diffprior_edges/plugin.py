"""Hook implementations and config models of diffprior-edges. No torch at import time."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Union

from pydantic import Field, ValidationInfo, field_validator

from diffprior import TermConfig, resolve_path
from diffprior import hookimpl

SHAPES = ("circle", "square", "diamond")


class TotalVariationConfig(TermConfig):
    """Smoothness: log c = −Σ_pixels |∇x| (total variation), summed like the prior's loss.

    ``isotropic`` uses √(∂x² + ∂y² + ε²) − ε per pixel (channels pooled), ``anisotropic``
    uses |∂x| + |∂y| smoothed by ε. Large weights flatten the sample into patches.
    """

    type: Literal["tv"] = "tv"
    default_weight: ClassVar = {"linear": [0.1, 0.0]}
    default_clip: ClassVar = "none"
    norm: Literal["isotropic", "anisotropic"] = "isotropic"
    epsilon: float = Field(0.01, gt=0, description="smoothing of |∇x| near 0, keeps the gradient finite")

    def build(self, ctx):
        from .terms import TotalVariation

        return TotalVariation(self, ctx)


class EdgesConfig(TermConfig):
    """Edge alignment: the image-gradient magnitude of x should follow a target edge map.

    log c = D · corr(|∇x|, E), the Pearson correlation over pixels times the number of
    pixels D, so the score scales like the prior's summed loss; metric ``edge_correlation``
    is the correlation in [-1, 1] (about 0 for noise).
    ``target`` is a built-in outline (``circle``, ``square``, ``diamond``, sized to the
    prior) or a safetensors file with an ``edges`` tensor (an edge map, H×W or C×H×W, ≥ 0)
    or an ``image`` tensor (its edges are computed the same way as x's).
    """

    type: Literal["edges"] = "edges"
    default_weight: ClassVar = {"linear": [0.1, 0.0]}
    default_clip: ClassVar = "none"
    target: Union[Literal["circle", "square", "diamond"], Path] = Field(
        "circle", description="a built-in outline or a safetensors file with 'edges' or 'image'"
    )
    size: float = Field(0.35, gt=0, le=0.5, description="built-in outlines: half-size as a fraction of the image side")
    width: float = Field(1.0, gt=0, description="built-in outlines: line width in pixels (Gaussian σ)")
    epsilon: float = Field(0.01, gt=0, description="smoothing of |∇x| near 0")

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value, info: ValidationInfo):
        if isinstance(value, str) and value in SHAPES:
            return value
        if isinstance(value, str) and "." not in value and "/" not in value:
            raise ValueError(f"target {value!r} is neither a built-in outline ({', '.join(SHAPES)}) nor a file name")
        return resolve_path(value, info)

    def build(self, ctx):
        from .terms import EdgeAlignment

        return EdgeAlignment(self, ctx)


@hookimpl
def register_terms(register):
    register(TotalVariationConfig)
    register(EdgesConfig)
