"""Self-describing diffprior checkpoints of diffusers-layout priors: ``NAME.safetensors``
(UNet2DModel weights) beside ``NAME.json`` (UNet config, scheduler config, sample shape,
data range, T, schedule, prediction type, parameter count, where it came from).

``diffprior convert`` writes them from any ``diffusers`` or ``guided-diffusion`` prior; the
``diffusers`` prior type loads them (``model = "NAME.safetensors"``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from diffprior import ConfigError

from .loading import CONVERTED_FORMAT

STORE_DTYPES = ("float32", "float16", "bfloat16")


def save_converted(prior, path, *, dtype: str = "float32") -> Path:
    """Write ``prior`` (a DiffusersPrior) as PATH.safetensors + PATH.json; returns the weights path."""
    from diffprior import save_weights

    if dtype not in STORE_DTYPES:
        raise ValueError(f"stored dtype must be one of {', '.join(STORE_DTYPES)}, got {dtype!r}")
    meta = {
        "format": CONVERTED_FORMAT,
        **{k: v for k, v in prior.describe().items() if k != "dtype"},
        "stored_dtype": dtype,
        "unet_config": {k: v for k, v in dict(prior.unet.config).items() if not k.startswith("_")},
        "scheduler_config": prior.metadata.get("scheduler_config"),
        "attention_heads": prior.metadata.get("attention_heads"),
        "source": prior.metadata.get("source", {}),
    }
    return save_weights(path, prior.unet.state_dict(), meta, dtype=dtype, file_format=CONVERTED_FORMAT)


def load_converted(model: str, *, dtype: str = "fp32", device: str = "cpu", class_label: Optional[int] = None,
                   gradient_checkpointing: bool = False, meta_only: bool = False):
    import torch
    from diffusers import UNet2DModel

    from .prior import make_prior
    from .loading import check_class_label, check_unet_config, describe_config, finish_unet, set_attention_heads

    path = Path(model).with_suffix(".safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    for key in ("unet_config", "scheduler_config"):
        if not isinstance(meta.get(key), dict):
            raise ConfigError(f"prior.model: {path.with_suffix('.json')} lacks {key!r}; is it written by diffprior convert?")
    check_unet_config(meta["unet_config"], str(path))
    info = describe_config(meta["unet_config"], meta["scheduler_config"])
    check_class_label(info["num_classes"], class_label, str(path))
    with torch.device("meta"):
        unet = UNet2DModel.from_config(meta["unet_config"])
    set_attention_heads(unet, meta.get("attention_heads"))
    if not meta_only:
        if not path.exists():
            raise ConfigError(f"prior.model: {path} is missing (its .json is there)")
        from safetensors.torch import load_file

        tensors = {k: v.float() for k, v in load_file(str(path)).items()}
        try:
            unet.load_state_dict(tensors, strict=True, assign=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise ConfigError(f"prior.model: {path} does not match the UNet config in its .json: {detail}") from None
        unet = finish_unet(unet, dtype=dtype, device=device, gradient_checkpointing=gradient_checkpointing)
    extra = {"attention_heads": meta.get("attention_heads"), "source": dict(meta.get("source") or {}, converted=str(path))}
    return make_prior(unet, meta["unet_config"], meta["scheduler_config"], info, class_label, extra)


def describe_prior(prior) -> dict:
    """shape, data range, T, schedule, prediction type, parameter count (and more) of a prior,
    any prior type: the fields a prior does not have are left out."""
    if hasattr(prior, "describe"):
        return prior.describe()
    info = {"shape": list(prior.shape), "data_range": list(prior.data_range), "T": prior.T,
            "schedule": getattr(prior.noise, "name", "?"), "prediction_type": "epsilon",
            "parameters": sum(p.numel() for p in prior.parameters())}
    return info
