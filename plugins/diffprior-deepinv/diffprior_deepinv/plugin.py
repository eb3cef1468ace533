"""Hook implementations and config models of diffprior-deepinv.

No torch and no deepinv at import time (``diffprior --help`` stays fast): the ``physics``
term's ``build`` and the ``deepinv`` command import them when they run.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from diffprior import TermConfig, resolve_path
from diffprior import hookimpl

from .operators import FIDELITIES, OperatorSpec

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
