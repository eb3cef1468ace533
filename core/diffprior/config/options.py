"""The run options: one torch-free model from the config file, the CLI and Python to
:func:`diffprior.optimize`, unchanged on the way.

A config file's top-level keys other than ``prior``, ``variable`` and ``terms`` are exactly
the fields of :class:`Options` (the run config model subclasses it). In Python::

    Options(optimizer={"steps": 300, "lr": 0.02}, timesteps=300, batch=4)
    options.updated(seed=7, batch=2)    # a validated copy: typed updates, as the CLI flags do
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from diffprior.config.checks import MAX_SEED, reject_booleans

from diffprior.config.bases import ExistingPath
from diffprior.method.schedules import ScheduleValue

__all__ = ["DEFAULT_TIMESTEPS", "DenoiseConfig", "InitConfig", "OptimizerConfig", "Options"]


class _Strict(BaseModel):
    """Finite numbers, and no boolean where a number goes (``steps = true``)."""

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data):
        return reject_booleans(cls, data)


class OptimizerConfig(_Strict):
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)
    type: Literal["adam", "adamax", "sgd"] = "adam"
    lr: ScheduleValue = 0.01
    steps: int = Field(1000, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = Field(0.0, ge=0.0)
    weight_decay: float = Field(0.0, ge=0.0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value):
        for i, beta in enumerate(value):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"betas[{i}] = {beta}: each beta is a decay rate in [0, 1)")
        return value

    @field_validator("lr")
    @classmethod
    def _no_lr_jitter(cls, value):
        if getattr(value, "jitter", 0):
            raise ValueError("the learning rate is shared by the batch: its schedule cannot have jitter")
        return value


class InitConfig(_Strict):
    """Where the variable's parameters start.

    ``prior``: an unconditional sample of the prior, drawn per sample from its own generator
    (``steps`` DDIM or DDPM steps from pure noise), mapped to parameters by the variable's
    ``params_from_x``. The optimisation then starts at a clean sample and inherits the prior's
    diversity; with ``timesteps.high`` below T it edits that sample (SDEdit-style) rather than
    drawing a new one. With ``candidates`` = N > 1 each sample draws N such samples and starts
    from the one the terms score highest (Σ λ(0)·log c): a start that already meets the
    constraints roughly, taken from the prior's own spread."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: Literal["variable", "noise", "zeros", "file", "prior"] = "variable"
    scale: float = Field(1.0, ge=0.0, description="standard deviation for 'noise'")
    path: Optional[ExistingPath] = Field(None, description="safetensors file with 'params' (or 'x') for 'file'")
    steps: int = Field(20, gt=0, description="sampler steps for 'prior'")
    method: Literal["ddim", "ddpm"] = Field("ddim", description="sampler for 'prior': deterministic DDIM or ancestral DDPM")
    candidates: int = Field(1, gt=0, le=1024, description="for 'prior': unconditional samples drawn per sample; the one the terms score highest is the start")

    @model_validator(mode="after")
    def _file_needs_path(self):
        if self.type == "file" and self.path is None:
            raise ValueError("init type 'file' needs path = 'FILE.safetensors'")
        return self


class DenoiseConfig(_Strict):
    """Optional clean-up after the optimisation: DDPM/DDIM from ``from_t`` to 0."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    from_t: int = Field(..., gt=0)
    steps: Optional[int] = Field(None, gt=0, description="number of denoising steps (default: from_t)")
    method: Literal["ddpm", "ddim"] = "ddpm"


DEFAULT_TIMESTEPS = {"type": "cosine-linear", "high": 1000, "low": 0, "amplitude": 0.25, "period": 50}


DEVICE_PATTERN = r"^(cpu|mps|cuda|cuda:\d+|xpu|xpu:\d+)$"


class Options(_Strict):
    """Everything about a run except what is optimised (prior, variable, terms)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    timesteps: ScheduleValue = Field(
        default_factory=lambda: dict(DEFAULT_TIMESTEPS),
        description="t as a function of progress (clipped to [1, T-1]); jitter is drawn per sample",
    )
    prior_weight: ScheduleValue = Field(1.0, description="w(t) on the prior term (a schedule of progress)")
    gradient: Literal["full", "sds"] = Field(
        "full", description="full: back-propagate through eps_theta; sds: (eps_theta - eps) as the gradient"
    )
    noise_samples: int = Field(1, gt=0, description="ε draws per step for the prior term")
    init: InitConfig = Field(default_factory=InitConfig)
    denoise: Optional[DenoiseConfig] = None
    batch: int = Field(1, gt=0, description="number of samples (sample i has seed + i)")
    batch_size: Optional[int] = Field(
        None, gt=0,
        description="samples optimised together: the batch is run in consecutive batches of this size "
                    "(default: all at once). Under torchrun and --shard each process takes whole batches, "
                    "so a convolutional prior gives the single-process floats bit for bit",
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)
    device: str = Field("cpu", description="cpu, cuda, cuda:N, mps or xpu")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str):
        import re

        if not re.match(DEVICE_PATTERN, value.strip()):
            raise ValueError(f"unknown device {value!r}: use cpu, cuda, cuda:N (N = 0, 1, ...), mps or xpu")
        return value.strip()

    @property
    def steps(self) -> int:
        return self.optimizer.steps

    def seeds(self) -> list[int]:
        """The seed of each sample: ``seed + i`` for sample i of ``batch``."""
        return [self.seed + i for i in range(self.batch)]

    def updated(self, **changes: Any):
        """A validated copy with top-level fields replaced (e.g. ``seed=3``, ``device="cuda"``)."""
        new = type(self).model_validate({**dict(self), **changes})
        if self.__pydantic_private__:  # e.g. a run config's folder
            new.__pydantic_private__ = dict(self.__pydantic_private__)
        return new
