"""Load a diffusers model as a prior: a saved pipeline folder, a bare model folder, a hub id
(through the ordinary Hugging Face cache) or a checkpoint written by ``diffprior convert``.

What is refused, and why: text-conditioned UNets (UNet2DConditionModel) and latent pipelines
(a VAE/VQ-VAE beside the UNet) are not priors over the images a term sees; continuous-time
schedulers (score SDE, Karras, consistency) have no discrete ᾱ_t.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from diffprior import ConfigError

CONVERTED_FORMAT = "diffprior-diffusers/1"
LATENT_COMPONENTS = ("vae", "vqvae", "movq")
TEXT_COMPONENTS = ("text_encoder", "tokenizer", "bert")


# ------------------------------------------------------------------------------ where configs are
def is_converted_checkpoint(model: str) -> bool:
    path = Path(model)
    if path.suffix not in (".safetensors", ".json"):
        return False
    meta = path.with_suffix(".json")
    if not meta.exists():
        return False
    try:
        return json.loads(meta.read_text()).get("format") == CONVERTED_FORMAT
    except (json.JSONDecodeError, OSError):
        return False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_snapshot(repo_id: str, revision: Optional[str]) -> Path:
    """The cached snapshot of a hub repository's config files (downloaded when online)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=["*.json", "*.txt"]))
    except Exception as exc:  # offline and not cached, no network, no such repository, ...
        from huggingface_hub import constants

        reason = "downloading is off (HF_HUB_OFFLINE=1)" if _offline() else f"the hub could not be reached ({type(exc).__name__})"
        raise ConfigError(
            f"prior.model: {repo_id!r} is not a local folder and is not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}), and {reason}; on a machine with internet run `hf download {repo_id}` "
            f"(older huggingface_hub: `huggingface-cli download {repo_id}`) and copy the cache here, or give the folder of a saved pipeline"
        ) from None


def _read(path: Path) -> Optional[dict]:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"prior.model: {path} is not valid JSON: {exc}") from None


@dataclass
class Layout:
    """Where the UNet and scheduler configs of a model are (folder-relative)."""

    root: Path
    hub_id: Optional[str]
    unet_subfolder: Optional[str]
    unet_config: dict
    scheduler_config: Optional[dict]
    pipeline: dict = field(default_factory=dict)

    @property
    def location(self) -> str:
        return self.hub_id or str(self.root)


def find_layout(model: str, subfolder: Optional[str] = None, revision: Optional[str] = None) -> Layout:
    """Read the configs of a folder or hub id; refuse model kinds that are not pixel priors."""
    path = Path(model).expanduser()
    if path.is_dir():
        root, hub_id = path, None
    elif path.exists():
        raise ConfigError(f"prior.model: {path} is a file; give a diffusers folder, a hub id, or a converted NAME.safetensors")
    elif model.count("/") == 1 and not model.startswith((".", "/", "~")):
        root, hub_id = _hub_snapshot(model, revision), model
    else:
        raise ConfigError(f"prior.model: folder {path} not found (give a saved diffusers pipeline/model folder, a hub id "
                          "like 'google/ddpm-celebahq-256', or a NAME.safetensors written by diffprior convert)")

    pipeline = _read(root / "model_index.json") or {}
    latent = [c for c in LATENT_COMPONENTS if c in pipeline]
    text = [c for c in TEXT_COMPONENTS if c in pipeline]
    if latent:
        raise ConfigError(f"prior.model: {model} is a latent-diffusion pipeline ({pipeline.get('_class_name', '?')} with "
                          f"{latent[0]!r}): its UNet models latents, not images; diffprior needs a pixel-space UNet2DModel")
    if text:
        raise ConfigError(f"prior.model: {model} is a text-conditioned pipeline ({pipeline.get('_class_name', '?')} with "
                          f"{text[0]!r}); diffprior needs an unconditional (or class-conditional) pixel-space UNet2DModel")
    if subfolder is None and "unet" in pipeline and (root / "unet" / "config.json").exists():
        subfolder = "unet"  # a saved pipeline; early hub repositories kept the UNet at the top level
    unet_dir = root / subfolder if subfolder else root
    unet_config = _read(unet_dir / "config.json")
    if unet_config is None:
        raise ConfigError(f"prior.model: no config.json in {unet_dir}" + (" (is subfolder right?)" if subfolder else
                          "; give subfolder = 'unet' if the model is in a subfolder"))
    scheduler_config = None
    for candidate in (root / "scheduler" / "scheduler_config.json", unet_dir / "scheduler_config.json",
                      root / "scheduler_config.json"):
        scheduler_config = _read(candidate)
        if scheduler_config is not None:
            break
    return Layout(root, hub_id, subfolder, unet_config, scheduler_config, pipeline)


def check_unet_config(config: dict, where: str) -> None:
    cls = config.get("_class_name", "UNet2DModel")
    if cls == "UNet2DConditionModel":
        raise ConfigError(f"prior.model: {where} holds a text-conditioned UNet2DConditionModel (Stable-Diffusion-like); "
                          "diffprior needs an unconditional (or class-conditional) pixel-space UNet2DModel")
    if cls != "UNet2DModel":
        raise ConfigError(f"prior.model: {where} holds a {cls}; only UNet2DModel is supported")
    if config.get("time_embedding_type", "positional") == "fourier":
        raise ConfigError(f"prior.model: {where} is a continuous-time score model (Fourier time embedding, e.g. NCSN++); "
                          "diffprior needs a discrete-time DDPM")
    if config.get("class_embed_type") not in (None,):
        raise ConfigError(f"prior.model: class_embed_type {config['class_embed_type']!r} is not supported "
                          "(class-conditional models with num_class_embeds are)")
    c_in, c_out = int(config.get("in_channels", 3)), int(config.get("out_channels", 3))
    if c_out not in (c_in, 2 * c_in):
        raise ConfigError(f"prior.model: {where} has {c_in} input and {c_out} output channels; expected {c_in} "
                          f"(ε, v or x0) or {2 * c_in} (with learned variance)")
    if config.get("sample_size") is None:
        raise ConfigError(f"prior.model: {where} has no sample_size in its config; the sample shape is unknown")


def describe_config(unet_config: dict, scheduler_config: dict) -> dict[str, Any]:
    """Shape, data range, schedule name, T and prediction type, from the configs alone."""
    from .schedule import betas_from_scheduler_config

    size = unet_config["sample_size"]
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    c = int(unet_config.get("in_channels", 3))
    r = float(scheduler_config.get("clip_sample_range", 1.0))
    betas, name = betas_from_scheduler_config(scheduler_config)
    prediction = scheduler_config.get("prediction_type", "epsilon")
    if prediction not in ("epsilon", "v_prediction", "sample"):
        raise ConfigError(f"prior.model: prediction_type {prediction!r} is not supported (epsilon, v_prediction, sample)")
    return {
        "shape": [c, h, w],
        "data_range": [-r, r],
        "T": int(betas.numel()),
        "schedule": name,
        "prediction_type": prediction,
        "learned_variance": int(unet_config.get("out_channels", c)) == 2 * c,
        "num_classes": unet_config.get("num_class_embeds"),
    }


# ------------------------------------------------------------------------------ building
def set_attention_heads(unet, num_heads: Optional[int]) -> None:
    """Give every attention layer ``num_heads`` heads (guided-diffusion's fixed head count,
    which UNet2DModel's single ``attention_head_dim`` cannot express across widths)."""
    if not num_heads:
        return
    from diffusers.models.attention_processor import Attention

    for module in unet.modules():
        if isinstance(module, Attention):
            module.heads = num_heads
            module.scale = (module.inner_dim // num_heads) ** -0.5


def finish_unet(unet, *, dtype: str, device: str, gradient_checkpointing: bool):
    from .prior import DTYPES

    import torch

    # plain Module.to: UNet2DModel keeps no modules in float32, so diffusers' cast warning does not apply
    unet = torch.nn.Module.to(unet, device=device, dtype=DTYPES[dtype]).eval().requires_grad_(False)
    if gradient_checkpointing:
        unet.enable_gradient_checkpointing()  # active whenever autograd is on, eval mode included
    return unet


def check_class_label(num_classes: Optional[int], class_label: Optional[int], where: str) -> None:
    if num_classes and class_label is None:
        raise ConfigError(f"prior: {where} is class-conditional ({num_classes} classes): give class_label = N (0..{num_classes - 1})")
    if class_label is not None and not num_classes:
        raise ConfigError(f"prior.class_label: {where} is not class-conditional; remove class_label")
    if class_label is not None and not 0 <= class_label < num_classes:
        raise ConfigError(f"prior.class_label: {class_label} is out of range 0..{num_classes - 1}")


def load_folder_prior(model: str, *, subfolder=None, revision=None, variant=None, dtype: str = "fp32",
                         device: str = "cpu", class_label: Optional[int] = None, gradient_checkpointing: bool = False,
                         meta_only: bool = False):
    """A :class:`DiffusersPrior` from a diffusers folder or hub id.

    With ``meta_only`` the network is built on the meta device (no weights read, nothing
    run): enough for shapes and parameter counts.
    """
    if is_converted_checkpoint(model):
        raise ConfigError(f"prior.model: {model} is a converted checkpoint; load it with diffprior_diffusers.converted.load_converted")
    layout = find_layout(model, subfolder, revision)
    where = layout.location + (f"/{layout.unet_subfolder}" if layout.unet_subfolder else "")
    check_unet_config(layout.unet_config, where)
    if layout.scheduler_config is None:
        raise ConfigError(f"prior.model: {layout.location} has no scheduler config (scheduler/scheduler_config.json or "
                          "scheduler_config.json); the noise schedule the model was trained with is unknown")
    info = describe_config(layout.unet_config, layout.scheduler_config)
    check_class_label(info["num_classes"], class_label, where)

    from diffusers import UNet2DModel

    if meta_only:
        import torch

        config = {k: v for k, v in layout.unet_config.items() if not k.startswith("_")}
        with torch.device("meta"):
            unet = UNet2DModel.from_config(config)
    else:
        try:
            from .prior import DTYPES

            unet = UNet2DModel.from_pretrained(layout.location, subfolder=layout.unet_subfolder, revision=revision,
                                               variant=variant, torch_dtype=DTYPES[dtype], low_cpu_mem_usage=False,
                                               local_files_only=_offline() or layout.hub_id is None)
        except (OSError, EnvironmentError, ValueError) as exc:
            first = " ".join(str(exc).split())[:300]
            raise ConfigError(f"prior.model: could not load the UNet weights from {where}: {first}") from None
        unet = finish_unet(unet, dtype=dtype, device=device, gradient_checkpointing=gradient_checkpointing)
    from .prior import make_prior

    return make_prior(unet, layout.unet_config, layout.scheduler_config, info, class_label,
                       {"source": {"type": "diffusers", "model": model, "subfolder": layout.unet_subfolder,
                                   "revision": revision, "variant": variant}})
