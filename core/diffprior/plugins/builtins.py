"""The core's own priors, variables, terms, schedules and commands.

Registered through the same hooks as any plugin (entry point ``builtins`` of the
``diffprior`` distribution). Only config classes live here; torch is imported by ``build``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Optional, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from diffprior.cli.core_commands import CORE_COMMANDS
from diffprior.config.bases import ExistingPath, PriorConfig, TermConfig, VariableConfig, resolve_path
from diffprior.errors import ConfigError
from diffprior.plugins.hooks import hookimpl
from diffprior.method.schedules import BUILTIN_SCHEDULES


class GaussianPriorConfig(PriorConfig):
    """An analytic prior N(mean, diag(var)) with the exact ε_θ: ground truth for tests, and a tutorial.

    Give ``shape`` with scalar ``mean``/``var``, or a ``checkpoint`` safetensors file holding
    ``mean`` and ``var`` tensors.
    """

    type: Literal["gaussian"] = "gaussian"
    shape: Optional[list[int]] = Field(None, description="sample shape, e.g. [1, 8, 8]")
    mean: Union[float, list[float]] = 0.0
    var: Union[float, list[float]] = 1.0
    checkpoint: Optional[ExistingPath] = Field(None, description="safetensors file with 'mean' and 'var'")
    noise_schedule: Literal["linear", "cosine"] = "linear"
    T: int = Field(1000, gt=1)

    @field_validator("var")
    @classmethod
    def _positive_variance(cls, value):
        if any(v <= 0 for v in (value if isinstance(value, list) else [value])):
            raise ValueError(f"the Gaussian prior's variance must be positive, got {value}")
        return value

    @field_validator("shape")
    @classmethod
    def _positive_dims(cls, value):
        if value is not None and (not value or any(d <= 0 for d in value)):
            raise ValueError(f"a sample shape is a list of positive sizes, e.g. [1, 8, 8]; got {value}")
        return value

    @model_validator(mode="after")
    def _shape_or_checkpoint(self):
        if self.checkpoint is None and self.shape is None and not isinstance(self.mean, list):
            raise ValueError("give the Gaussian prior a shape (e.g. shape = [1, 8, 8]), a list mean, or a checkpoint")
        return self

    def declared_shape(self):
        if self.shape is not None:
            return tuple(self.shape)
        return (len(self.mean),) if isinstance(self.mean, list) and self.checkpoint is None else None

    def declared_T(self):
        return self.T

    def build(self, ctx):
        import torch

        from diffprior.method.noise import NoiseSchedule
        from diffprior.method.priors import GaussianPrior

        if self.checkpoint is not None:
            from diffprior.tensorfiles import load_tensors

            tensors = load_tensors(self.checkpoint, what="prior.checkpoint")
            missing = {"mean", "var"} - set(tensors)
            if missing:
                raise ConfigError(f"prior.checkpoint: {self.checkpoint} lacks tensor(s) {sorted(missing)}")
            mean, var = tensors["mean"], tensors["var"]
        else:
            mean = torch.as_tensor(self.mean, dtype=torch.float32)
            var = torch.as_tensor(self.var, dtype=torch.float32)
            if self.shape is not None:
                mean, var = mean.expand(self.shape).clone(), var.expand(self.shape).clone()
        return GaussianPrior(mean, var, NoiseSchedule.named(self.noise_schedule, self.T)).to(ctx.device)


class PixelsConfig(VariableConfig):
    """x = η directly; terms see η clipped to the prior's data range (the paper's recipe)."""

    type: Literal["pixels"] = "pixels"
    clip_terms: bool = True

    def build(self, ctx):
        from diffprior.method.variables import Pixels

        return Pixels(ctx.prior, clip_terms=self.clip_terms)


class BoundedPixelsConfig(VariableConfig):
    """x = lo + (hi − lo)·sigmoid(η): always inside the data range."""

    type: Literal["bounded-pixels"] = "bounded-pixels"

    def build(self, ctx):
        from diffprior.method.variables import BoundedPixels

        return BoundedPixels(ctx.prior)


class SimplexLabelsConfig(VariableConfig):
    """Label maps on the simplex: P(0.5 < N(m, σ) < 1.5) normalised over classes, σ annealed."""

    type: Literal["simplex-labels"] = "simplex-labels"
    sigma_start: float = Field(0.2, gt=0)
    sigma_end: float = Field(0.02, gt=0)

    def build(self, ctx):
        from diffprior.method.variables import SimplexLabelMap

        return SimplexLabelMap(ctx.prior, self.sigma_start, self.sigma_end)


class MatchConfig(TermConfig):
    """Masked Gaussian observation: log c = −Σ M⊙(x − y)² / (2·noise²) (inpainting-like).

    ``target`` is a number or a safetensors file with a ``target`` tensor (and optionally
    ``mask``); ``mask`` may also be its own file. Default weight 1, no clipping.
    """

    type: Literal["match"] = "match"
    default_weight: ClassVar = 1.0
    default_clip: ClassVar = "none"
    target: Union[float, Path] = 0.0
    mask: Optional[ExistingPath] = None
    noise: float = Field(0.1, gt=0)

    @field_validator("target")
    @classmethod
    def _target_file(cls, value, info: ValidationInfo):
        return resolve_path(value, info) if isinstance(value, Path) or isinstance(value, str) else value

    def check_prior_shape(self, shape: tuple) -> str | None:
        """Called by ``validate`` with the prior's declared shape: a target or mask file of
        another shape is an error (read from the file's header, no tensors loaded)."""
        for label, path, key in (("target", self.target, "target"), ("mask", self.mask, "mask")):
            if isinstance(path, Path):
                found = _tensor_shape(path, key)
                if found is not None and found != tuple(shape):
                    return _shape_message(label, path, found, shape)
        return None

    def build(self, ctx):
        import torch

        from diffprior.tensorfiles import load_tensors
        from diffprior.method.terms import MaskedGaussian

        shape = ctx.prior.shape
        mask = None
        if isinstance(self.target, Path):
            tensors = load_tensors(self.target, what="terms: match target")
            if "target" not in tensors:
                raise ConfigError(f"terms: match target file {self.target} has no 'target' tensor")
            target, mask = tensors["target"], tensors.get("mask")
        else:
            target = torch.full(shape, float(self.target))
        if self.mask is not None:
            mask = load_tensors(self.mask, what="terms: match mask").get("mask")
            if mask is None:
                raise ConfigError(f"terms: match mask file {self.mask} has no 'mask' tensor")
        mask = torch.ones(shape) if mask is None else mask.float()
        for label, tensor, path in (("target", target, self.target), ("mask", mask, self.mask or self.target)):
            if tuple(tensor.shape) != tuple(shape):  # exactly: broadcasting would hide a wrong file
                raise ConfigError("terms: " + _shape_message(label, path, tuple(tensor.shape), shape))
        return MaskedGaussian(self, ctx, target.to(ctx.device), mask.to(ctx.device))


def _tensor_shape(path: Path, key: str) -> tuple | None:
    """The shape of one tensor of a safetensors file, from its header (None if unreadable)."""
    import json
    import struct

    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > 100_000_000:
                return None
            header = json.loads(f.read(size))
        return tuple(header[key]["shape"]) if key in header else None
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None  # the build reports unreadable files with their name


def _shape_message(label: str, path, found: tuple, shape) -> str:
    return (f"match {label} {path} has shape {found}; the prior's samples have shape {tuple(shape)}, and "
            "the shapes must be equal (one value per pixel and channel)")


@hookimpl
def register_priors(register):
    register(GaussianPriorConfig)


@hookimpl
def register_variables(register):
    for cls in (PixelsConfig, BoundedPixelsConfig, SimplexLabelsConfig):
        register(cls)


@hookimpl
def register_terms(register):
    register(MatchConfig)


@hookimpl
def register_schedules(register):
    for cls in BUILTIN_SCHEDULES:
        register(cls)


@hookimpl
def register_commands(register):
    for command in CORE_COMMANDS:
        register(command)
