"""diffprior hooks of diffprior-diffusers: the ``diffusers`` and ``guided-diffusion`` priors and
the ``convert`` and ``prior-info`` commands. No torch or diffusers at import time."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from diffprior import Command, ConfigError, ExistingPath, PriorConfig, UsageError, hookimpl

from .flags import preset_names, resolve_flags

Dtype = Literal["fp32", "fp16", "bf16"]


class _Common(PriorConfig):
    dtype: Dtype = Field("fp32", description="weights and activations of the network: fp32, fp16 or bf16 (ε is float32)")
    device: Optional[str] = Field(None, description="device of the network (default: the run's)")
    class_label: Optional[int] = Field(None, ge=0, description="the class of a class-conditional model")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass: less memory, ~1.3x time")

    def build(self, ctx):
        prior = self.build_prior(self.device or ctx.device)
        if self.device and self.device != ctx.device:
            import torch

            prior.run_device = torch.device(ctx.device)  # the run's tensors stay where the run is
        return prior

    def build_prior(self, device: str = "cpu", *, meta_only: bool = False):
        raise NotImplementedError


class DiffusersPriorConfig(_Common):
    """A diffusers UNet2DModel: ``model`` is a saved pipeline folder (``unet/`` + ``scheduler/``),
    a bare model folder (with ``scheduler_config.json``), a hub id (through the Hugging Face
    cache; ``HF_HUB_OFFLINE=1`` respected) or a ``NAME.safetensors`` written by ``diffprior convert``.
    Noise schedule, prediction type (ε, v or x0: all converted to ε), sample shape and data range
    come from the model's configs."""

    type: Literal["diffusers"] = "diffusers"
    model: str = Field(..., description="folder, hub id ('google/ddpm-celebahq-256') or converted NAME.safetensors")
    subfolder: Optional[str] = Field(None, description="folder of the UNet inside model (default: 'unet' for pipelines)")
    revision: Optional[str] = Field(None, description="hub revision (branch, tag or commit)")
    variant: Optional[str] = Field(None, description="weights variant, e.g. 'fp16' for diffusion_pytorch_model.fp16.safetensors")

    @field_validator("model")
    @classmethod
    def _local_paths(cls, value: str, info: ValidationInfo):
        base = (info.context or {}).get("base_dir")
        path = Path(value).expanduser()
        if not path.is_absolute() and base is not None and (Path(base) / path).exists():
            return str(Path(base) / path)
        return str(path) if path.exists() else value

    def build_prior(self, device: str = "cpu", *, meta_only: bool = False):
        from .load import load_diffusers_prior

        return load_diffusers_prior(self.model, subfolder=self.subfolder, revision=self.revision, variant=self.variant,
                                    dtype=self.dtype, device=device, class_label=self.class_label,
                                    gradient_checkpointing=self.gradient_checkpointing, meta_only=meta_only)


FLAG_KEYS = ("image_size", "num_channels", "num_res_blocks", "channel_mult", "attention_resolutions", "num_heads",
             "num_head_channels", "num_heads_upsample", "learn_sigma", "class_cond", "use_scale_shift_norm",
             "resblock_updown", "use_new_attention_order", "noise_schedule", "diffusion_steps", "dropout", "use_fp16")


class GuidedDiffusionPriorConfig(_Common):
    """An OpenAI guided-diffusion (ADM) checkpoint: ``checkpoint`` (.pt, read with
    weights_only=True only, or .safetensors) plus the flags it was trained with, from a
    ``preset`` (the published checkpoints by name) and/or given one by one. The network is
    converted to diffusers' UNet2DModel on load."""

    type: Literal["guided-diffusion"] = "guided-diffusion"
    checkpoint: ExistingPath = Field(..., description="the model's .pt state dict or .safetensors")
    preset: Optional[str] = Field(None, description="flags of a published checkpoint: " + ", ".join(preset_names()))
    image_size: Optional[int] = None
    num_channels: Optional[int] = None
    num_res_blocks: Optional[int] = None
    channel_mult: Optional[Union[str, list[float]]] = Field(None, description="e.g. '1,1,2,2,4,4' (default by image_size)")
    attention_resolutions: Optional[Union[str, list[int]]] = Field(None, description="e.g. '32,16,8'")
    num_heads: Optional[int] = None
    num_head_channels: Optional[int] = None
    num_heads_upsample: Optional[int] = None
    learn_sigma: Optional[bool] = None
    class_cond: Optional[bool] = None
    use_scale_shift_norm: Optional[bool] = None
    resblock_updown: Optional[bool] = None
    use_new_attention_order: Optional[bool] = None
    noise_schedule: Optional[Literal["linear", "cosine"]] = None
    diffusion_steps: Optional[int] = None
    dropout: Optional[float] = None
    use_fp16: Optional[bool] = None

    def flags(self):
        return resolve_flags(self.preset, {k: getattr(self, k) for k in FLAG_KEYS})

    @model_validator(mode="after")
    def _valid_flags(self):
        if self.checkpoint.suffix not in (".pt", ".pth", ".safetensors", ".bin"):
            raise ValueError(f"checkpoint {self.checkpoint.name}: expected a .pt state dict or a .safetensors file")
        try:
            flags = self.flags()
        except ValueError as exc:  # pydantic's own error or ours: one line
            raise ValueError(_one_line(exc)) from None
        if flags.class_cond and self.class_label is None:
            raise ValueError("this model is class-conditional (class_cond): give class_label = N (0..999)")
        if not flags.class_cond and self.class_label is not None:
            raise ValueError("class_label is for class-conditional models (class_cond = true)")
        return self

    def build_prior(self, device: str = "cpu", *, meta_only: bool = False):
        from .adm import load_guided_diffusion_prior

        return load_guided_diffusion_prior(self.checkpoint, self.flags(), dtype=self.dtype, device=device,
                                           class_label=self.class_label, gradient_checkpointing=self.gradient_checkpointing,
                                           meta_only=meta_only, preset=self.preset)


def _one_line(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if where else msg)
        return "; ".join(parts)
    return " ".join(str(exc).split())


# ------------------------------------------------------------------------------ commands
CONFIG_SUFFIXES = (".toml", ".yaml", ".yml")


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a diffusers folder or hub id, a guided-diffusion .pt/.safetensors (with --preset or "
                                 "--set flags), a converted NAME.safetensors, or a run config whose [prior] to use")
    p.add_argument("--preset", default=None, help="guided-diffusion preset: " + ", ".join(preset_names()))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a prior key, e.g. --set class_label=207 --set num_channels=128")


def prior_config_from_args(model: str, preset: Optional[str], overrides: list[str]):
    """The prior config a command-line MODEL names (see ``_add_model_arguments``)."""
    from diffprior import load_config

    from .loading import is_converted_checkpoint

    path = Path(model)
    if path.suffix in CONFIG_SUFFIXES or (path.suffix == ".json" and not is_converted_checkpoint(model)):
        keys = [o if o.startswith("prior.") else f"prior.{o}" for o in overrides]
        return load_config(path, keys).prior
    gd = preset is not None or (path.suffix in (".pt", ".pth", ".bin")) or (
        path.suffix == ".safetensors" and not is_converted_checkpoint(model))
    data: dict = {"type": "guided-diffusion", "checkpoint": model, "preset": preset} if gd else {"type": "diffusers", "model": model}
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"--set {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        data[key.removeprefix("prior.").strip()] = _scalar(value)
    cls = GuidedDiffusionPriorConfig if gd else DiffusersPriorConfig
    try:
        return cls.model_validate(data, context={"base_dir": Path.cwd()})
    except ValueError as exc:
        raise ConfigError(_one_line(exc), source=model) from None


def _scalar(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _configure_info(p: argparse.ArgumentParser) -> None:
    _add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _info(args) -> int:
    from .converted import describe_prior

    config = prior_config_from_args(args.model, args.preset, args.overrides)
    if hasattr(config, "build_prior"):
        prior = config.build_prior("cpu", meta_only=True)  # the network on the meta device: nothing read or run
    else:
        from diffprior import BuildContext

        prior = config.build(BuildContext(device="cpu"))
    info = {"type": config.type, **describe_prior(prior)}
    info.pop("dtype", None)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    labels = {"learned_variance": "learned variance", "class_conditional": "class-conditional",
              "prediction_type": "prediction type", "data_range": "data range"}
    for key, value in info.items():
        if key == "parameters":
            value = f"{value:,}"
        elif isinstance(value, bool) or value is None:
            value = {True: "yes", False: "no", None: "no"}[value]
        print(f"{labels.get(key, key) + ':':18} {value}")
    return 0


def _configure_convert(p: argparse.ArgumentParser) -> None:
    _add_model_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="NAME.safetensors to write (NAME.json beside it)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32", help="stored weights")
    p.add_argument("--force", action="store_true", help="replace an existing checkpoint")


def _convert(args) -> int:
    from .converted import save_converted

    out = args.out if args.out.suffix == ".safetensors" else args.out.with_name(args.out.name + ".safetensors")
    if (out.exists() or out.with_suffix(".json").exists()) and not args.force:
        raise UsageError(f"{out} already exists; pass --force to replace it")
    config = prior_config_from_args(args.model, args.preset, args.overrides)
    if not hasattr(config, "build_prior"):
        raise UsageError(f"prior type {config.type!r} cannot be converted; convert works on 'diffusers' and 'guided-diffusion' priors")
    prior = config.build_prior("cpu")
    path = save_converted(prior, out, dtype=args.dtype)
    info = prior.describe()
    print(f"wrote {path} and {path.with_suffix('.json').name}: {info['parameters']:,} parameters, shape {info['shape']}, "
          f"T {info['T']} ({info['schedule']}), {info['prediction_type']}")
    print(f'use it with: [prior] type = "diffusers", model = "{path}"')
    return 0


COMMANDS = (
    Command("prior-info", "print a prior's shape, data range, T, schedule, prediction type and parameter count (without running it)",
            _configure_info, _info),
    Command("convert", "write a diffusers or guided-diffusion prior as a self-describing diffprior checkpoint (safetensors + JSON)",
            _configure_convert, _convert),
)


@hookimpl
def register_priors(register):
    register(DiffusersPriorConfig)
    register(GuidedDiffusionPriorConfig)


@hookimpl
def register_commands(register):
    for command in COMMANDS:
        register(command)
