"""guided-diffusion (ADM) checkpoints as diffusers UNet2DModels: one network implementation.

The correspondence (openai/guided-diffusion ``unet.py`` → diffusers ``UNet2DModel``):

========================================  =============================================
ADM                                       UNet2DModel
========================================  =============================================
``time_embed.0/2``                        ``time_embedding.linear_1/2`` (sinusoid cos|sin
                                          = ``flip_sin_to_cos``, ``freq_shift = 0``)
``label_emb``                             ``class_embedding``
``input_blocks.0.0``                      ``conv_in``
ResBlock ``in_layers.0/2``,               ResnetBlock2D ``norm1/conv1``, ``time_emb_proj``,
``emb_layers.1``, ``out_layers.0/3``,     ``norm2/conv2``, ``conv_shortcut``
``skip_connection``                       (``use_scale_shift_norm`` = ``scale_shift``)
AttentionBlock ``norm``, ``qkv``,         Attention ``group_norm``, ``to_q/k/v`` (split from
``proj_out``                              qkv, per head in the legacy order), ``to_out.0``
Downsample ``op`` / down ResBlock         ``downsamplers.0.conv`` / ``downsamplers.0`` resnet
Upsample ``conv`` / up ResBlock           ``upsamplers.0.conv`` / ``upsamplers.0`` resnet
``out.0`` / ``out.2``                     ``conv_norm_out`` / ``conv_out``
========================================  =============================================

A level with attention becomes ``Attn{Down,Up}Block2D``; without, ``{Down,Up}Block2D``
(``resblock_updown = False``) or ``Resnet{Downsample,Upsample}Block2D`` (True). A fixed head
count (``num_heads``) is set on each attention layer after construction, because
UNet2DModel's one ``attention_head_dim`` cannot express it across widths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from diffprior import ConfigError

from .flags import ADMFlags

RESBLOCK = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
            "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}


def adm_unet_config(flags: ADMFlags) -> dict:
    """The UNet2DModel config of an ADM model."""
    levels = len(flags.channel_mult)
    attn = set(flags.attention_levels)
    plain_down = "ResnetDownsampleBlock2D" if flags.resblock_updown else "DownBlock2D"
    plain_up = "ResnetUpsampleBlock2D" if flags.resblock_updown else "UpBlock2D"
    return {
        "sample_size": flags.image_size,
        "in_channels": flags.in_channels,
        "out_channels": flags.out_channels,
        "layers_per_block": flags.num_res_blocks,
        "block_out_channels": [flags.num_channels * m for m in flags.channel_mult],
        "down_block_types": ["AttnDownBlock2D" if i in attn else plain_down for i in range(levels)],
        "up_block_types": ["AttnUpBlock2D" if i in attn else plain_up for i in reversed(range(levels))],
        "mid_block_type": "UNetMidBlock2D",
        "downsample_type": "resnet" if flags.resblock_updown else "conv",
        "upsample_type": "resnet" if flags.resblock_updown else "conv",
        "downsample_padding": 1,
        # a fixed head count is applied per layer after construction (see set_attention_heads)
        "attention_head_dim": flags.num_head_channels if flags.num_head_channels > 0 else 1,
        "norm_num_groups": 32,
        "attn_norm_num_groups": 32,  # ADM normalises before every attention, mid block included
        "norm_eps": 1e-5,
        "resnet_time_scale_shift": "scale_shift" if flags.use_scale_shift_norm else "default",
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "act_fn": "silu",
        "time_embedding_type": "positional",
        "num_class_embeds": flags.num_classes,
        "dropout": 0.0,
    }


def fixed_heads(flags: ADMFlags) -> Optional[int]:
    return None if flags.num_head_channels > 0 else flags.num_heads


def _heads(flags: ADMFlags, width: int) -> int:
    return width // flags.num_head_channels if flags.num_head_channels > 0 else flags.num_heads


def block_map(flags: ADMFlags) -> list[tuple[str, str, str, int]]:
    """(ADM prefix, UNet2DModel prefix, kind, width) for every module with parameters."""
    widths = [flags.num_channels * m for m in flags.channel_mult]
    levels, nres = len(widths), flags.num_res_blocks
    attn = set(flags.attention_levels)
    rows = [("time_embed.0", "time_embedding.linear_1", "plain", 0), ("time_embed.2", "time_embedding.linear_2", "plain", 0),
            ("input_blocks.0.0", "conv_in", "plain", 0)]
    if flags.class_cond:
        rows.append(("label_emb", "class_embedding", "plain", 0))
    k = 1
    for level in range(levels):
        for j in range(nres):
            rows.append((f"input_blocks.{k}.0", f"down_blocks.{level}.resnets.{j}", "res", 0))
            if level in attn:
                rows.append((f"input_blocks.{k}.1", f"down_blocks.{level}.attentions.{j}", "attn", widths[level]))
            k += 1
        if level != levels - 1:
            if flags.resblock_updown:
                rows.append((f"input_blocks.{k}.0", f"down_blocks.{level}.downsamplers.0", "res", 0))
            else:
                rows.append((f"input_blocks.{k}.0.op", f"down_blocks.{level}.downsamplers.0.conv", "plain", 0))
            k += 1
    rows += [("middle_block.0", "mid_block.resnets.0", "res", 0),
             ("middle_block.1", "mid_block.attentions.0", "attn", widths[-1]),
             ("middle_block.2", "mid_block.resnets.1", "res", 0)]
    k = 0
    for u, level in enumerate(reversed(range(levels))):
        for j in range(nres + 1):
            rows.append((f"output_blocks.{k}.0", f"up_blocks.{u}.resnets.{j}", "res", 0))
            index = 1
            if level in attn:
                rows.append((f"output_blocks.{k}.1", f"up_blocks.{u}.attentions.{j}", "attn", widths[level]))
                index = 2
            if level > 0 and j == nres:
                if flags.resblock_updown:
                    rows.append((f"output_blocks.{k}.{index}", f"up_blocks.{u}.upsamplers.0", "res", 0))
                else:
                    rows.append((f"output_blocks.{k}.{index}.conv", f"up_blocks.{u}.upsamplers.0.conv", "plain", 0))
            k += 1
    rows += [("out.0", "conv_norm_out", "plain", 0), ("out.2", "conv_out", "plain", 0)]
    return rows


def convert_adm_state_dict(state: dict, flags: ADMFlags) -> dict:
    """An ADM state dict in UNet2DModel layout. Works on meta tensors too (shapes only).

    Raises ValueError naming the keys the flags do not explain (left over) or expect but
    the checkpoint lacks.
    """
    out: dict = {}
    used: set[str] = set()
    missing: list[str] = []

    def take(key: str):
        if key not in state:
            missing.append(key)
            return None
        used.add(key)
        return state[key]

    for adm, new, kind, width in block_map(flags):
        if kind == "plain":
            keys = [p for p in ("weight", "bias") if f"{adm}.{p}" in state] or ["weight"]
            for p in keys:
                value = take(f"{adm}.{p}")
                if value is not None:
                    out[f"{new}.{p}"] = value
        elif kind == "res":
            for old, name in RESBLOCK.items():
                for p in ("weight", "bias"):
                    key = f"{adm}.{old}.{p}"
                    if old == "skip_connection" and key not in state:
                        continue  # identity skip: same channels in and out
                    value = take(key)
                    if value is not None:
                        out[f"{new}.{name}.{p}"] = value
        else:  # attention
            heads = _heads(flags, width)
            for p in ("weight", "bias"):
                norm, qkv, proj = take(f"{adm}.norm.{p}"), take(f"{adm}.qkv.{p}"), take(f"{adm}.proj_out.{p}")
                if norm is not None:
                    out[f"{new}.group_norm.{p}"] = norm
                if qkv is not None:
                    q, k, v = _split_qkv(qkv, heads, flags.use_new_attention_order)
                    out[f"{new}.to_q.{p}"], out[f"{new}.to_k.{p}"], out[f"{new}.to_v.{p}"] = q, k, v
                if proj is not None:
                    out[f"{new}.to_out.0.{p}"] = proj.reshape(proj.shape[0], -1) if p == "weight" else proj
    leftover = sorted(set(state) - used)
    if missing or leftover:
        parts = []
        if missing:
            parts.append(f"{len(missing)} key(s) the flags expect are missing (first: {', '.join(missing[:3])})")
        if leftover:
            parts.append(f"{len(leftover)} key(s) the flags do not explain (first: {', '.join(leftover[:3])})")
        raise ValueError("the checkpoint does not match the flags: " + "; ".join(parts)
                         + "; check image_size, num_channels, num_res_blocks, channel_mult, attention_resolutions, "
                           "class_cond, learn_sigma and resblock_updown (or the preset)")
    return out


def _split_qkv(qkv: torch.Tensor, heads: int, new_order: bool):
    """q, k, v of a 1×1 conv with 3C outputs, each as a Linear weight [C, C] (or bias [C]).

    The legacy order (guided-diffusion's default) interleaves per head: [q_h, k_h, v_h] for
    each head h; the new order stacks [q; k; v]."""
    three_c = qkv.shape[0]
    c = three_c // 3
    rest = qkv.shape[1:2]  # input channels for a weight, nothing for a bias
    if new_order:
        parts = qkv.reshape(3, c, *rest, *qkv.shape[2:])
        return tuple(parts[i].reshape(c, *rest) for i in range(3))
    per_head = qkv.reshape(heads, 3, c // heads, *rest, *qkv.shape[2:])
    return tuple(per_head[:, i].reshape(c, *rest) for i in range(3))


# ------------------------------------------------------------------------------ files
def read_state_dict(path: Path) -> dict:
    """Tensors of a ``.safetensors`` file or of a ``.pt`` read with ``weights_only=True``: a
    pickle that would run code is refused, never executed."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise ConfigError(f"prior.checkpoint: {path} is not a readable safetensors file: {exc}") from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = " ".join(str(exc).split())[:200]
        raise ConfigError(f"prior.checkpoint: {path} is not a plain tensor state dict and was not loaded "
                          f"(read with weights_only=True, which never runs code): {first}") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model", "ema"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"prior.checkpoint: {path} does not hold a state dict of tensors")
    return state


def build_unet(flags: ADMFlags, state: Optional[dict], *, dtype: str = "fp32", device: str = "cpu",
               gradient_checkpointing: bool = False):
    """A UNet2DModel with the converted weights (or on the meta device when ``state`` is None)."""
    from diffusers import UNet2DModel

    from .loading import finish_unet, set_attention_heads

    with torch.device("meta"):
        unet = UNet2DModel.from_config(adm_unet_config(flags))
    set_attention_heads(unet, fixed_heads(flags))
    if state is None:
        return unet
    try:
        converted = convert_adm_state_dict(state, flags)
    except ValueError as exc:
        raise ConfigError(f"prior.checkpoint: {exc}") from None
    converted = {k: v.float() for k, v in converted.items()}
    try:
        unet.load_state_dict(converted, strict=True, assign=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ConfigError(f"prior.checkpoint: the weights do not fit the flags: {detail}") from None
    return finish_unet(unet, dtype=dtype, device=device, gradient_checkpointing=gradient_checkpointing)


def load_guided_diffusion_prior(checkpoint, flags: ADMFlags, *, dtype: str = "fp32", device: str = "cpu",
                                class_label: Optional[int] = None, gradient_checkpointing: bool = False,
                                meta_only: bool = False, preset: Optional[str] = None):
    from .prior import make_prior
    from .loading import check_class_label, describe_config
    from .schedule import scheduler_config_for

    check_class_label(flags.num_classes, class_label, f"guided-diffusion checkpoint {Path(checkpoint).name}")
    state = None if meta_only else read_state_dict(Path(checkpoint))
    unet = build_unet(flags, state, dtype=dtype, device=device, gradient_checkpointing=gradient_checkpointing)
    unet_config = adm_unet_config(flags)
    scheduler_config = scheduler_config_for(flags.noise_schedule, flags.diffusion_steps)
    info = describe_config(unet_config, scheduler_config)
    return make_prior(unet, unet_config, scheduler_config, info, class_label,
                       {"attention_heads": fixed_heads(flags),
                        "source": {"type": "guided-diffusion", "checkpoint": str(checkpoint), "preset": preset,
                                   "flags": flags.model_dump()}})
