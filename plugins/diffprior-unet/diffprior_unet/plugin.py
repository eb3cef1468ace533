"""diffprior hooks of the U-Net plugin: the ``unet`` prior and the ``train-prior`` and
``sample`` commands. No torch at import time (configs are plain pydantic)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from diffprior import Command, UsageError
from diffprior import PriorConfig
from diffprior import hookimpl


class UNetPriorConfig(PriorConfig):
    """A trained U-Net: ``checkpoint`` is a bundled name (``"digits"``) or a NAME.safetensors path
    (relative to the config file) with NAME.json beside it."""

    type: Literal["unet"] = "unet"
    checkpoint: str = Field("digits", description="bundled checkpoint name or path to NAME.safetensors")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: run the U-Net under bf16 autocast (faster on CPUs with bf16 kernels and GPUs)")

    @field_validator("checkpoint")
    @classmethod
    def _resolve(cls, value, info: ValidationInfo):
        from .checkpoints import resolve_checkpoint

        base = (info.context or {}).get("base_dir")
        try:
            return str(resolve_checkpoint(value, base))
        except FileNotFoundError as exc:
            raise ValueError(str(exc)) from None

    def _metadata(self) -> dict:
        from pathlib import Path

        from .checkpoints import read_metadata

        return read_metadata(Path(self.checkpoint))

    def declared_shape(self):
        return tuple(self._metadata()["shape"])

    def declared_T(self):
        return int(self._metadata()["noise_schedule"]["T"])

    def build(self, ctx):
        from .checkpoints import load_prior

        return load_prior(self.checkpoint, ctx.device, self.precision)


# ------------------------------------------------------------------------------ train-prior
def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="training recipe (TOML/YAML/JSON), e.g. plugins/diffprior-unet/recipes/digits.toml")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/train-<config name>)")
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT/state.safetensors")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set train.steps=200")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _train(args) -> int:
    from .training import load_train_config, train

    config = load_train_config(args.config, args.overrides)
    out = args.out or Path("runs") / f"train-{args.config.stem}"
    train(config, out, resume=args.resume, progress=not args.quiet)
    return 0


# ------------------------------------------------------------------------------ sample
def _configure_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("prior", help="bundled checkpoint name (e.g. digits) or path to NAME.safetensors")
    p.add_argument("-n", type=int, default=16, help="number of samples")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: all T for ddpm, 50 for ddim)")
    p.add_argument("--method", choices=("ddpm", "ddim"), default="ddim")
    p.add_argument("--out", type=Path, default=Path("samples.png"), help="PNG grid to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the first sample (sample i gets seed + i)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--save-tensors", action="store_true", help="also write the samples as OUT.safetensors")


def _sample(args) -> int:
    if args.n <= 0:
        raise UsageError(f"-n must be positive, got {args.n}")
    if args.steps is not None and args.steps <= 0:
        raise UsageError(f"--steps must be positive, got {args.steps}")
    from .checkpoints import load_prior

    try:
        prior = load_prior(args.prior, args.device)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    steps = args.steps or (50 if args.method == "ddim" else None)
    x = prior.sample(args.n, steps=steps, method=args.method, seeds=range(args.seed, args.seed + args.n), progress=True)
    from diffprior import save_grid

    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(x, args.out, prior.data_range, scale=2 if prior.shape[-1] <= 64 else 1)
    if args.save_tensors:
        from safetensors.torch import save_file

        save_file({"x": x.cpu().contiguous()}, str(args.out.with_suffix(".safetensors")))
    print(f"wrote {args.n} sample(s) ({args.method}, {steps or prior.T} steps) → {args.out}")
    return 0


COMMANDS = (
    Command("train-prior", "train a U-Net diffusion prior from a recipe (EMA weights → NAME.safetensors + NAME.json)",
            _configure_train, _train),
    Command("sample", "draw unconditional samples from a U-Net prior and write a PNG grid", _configure_sample, _sample),
)


@hookimpl
def register_priors(register):
    register(UNetPriorConfig)


@hookimpl
def register_commands(register):
    for command in COMMANDS:
        register(command)
