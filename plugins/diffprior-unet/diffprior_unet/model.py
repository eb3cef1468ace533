"""An ADM-style U-Net (Dhariwal & Nichol 2021) predicting ε from (x_t, t).

Residual blocks take a timestep embedding (scale-shift GroupNorm by default), self-attention
runs at chosen low resolutions, and the last layer of every residual branch is zero-initialised
so an untrained network starts as (nearly) the identity on its skip paths.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import UNetArchitecture


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] of (integer or fractional) timesteps t [B]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def zero_init(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int, scale_shift: bool):
        super().__init__()
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_ch if scale_shift else out_ch))
        self.out_norm = nn.GroupNorm(groups, out_ch)
        self.out_layers = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1)))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        e = self.emb_layers(emb)[:, :, None, None].to(h.dtype)
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:
            h = self.out_norm(h + e)
        return self.skip(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    def __init__(self, ch: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj = zero_init(nn.Conv1d(ch, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x).reshape(B, C, H * W))
        q, k, v = qkv.reshape(B, 3, self.heads, C // self.heads, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)  # [B, heads, HW, C/heads]
        h = h.transpose(-1, -2).reshape(B, C, H * W)
        return x + self.proj(h).reshape(B, C, H, W)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Level(nn.Module):
    """A residual block, optionally followed by self-attention."""

    def __init__(self, res: ResBlock, attn: AttentionBlock | None):
        super().__init__()
        self.res = res
        self.attn = attn if attn is not None else nn.Identity()

    def forward(self, x, emb):
        return self.attn(self.res(x, emb))


class UNet(nn.Module):
    """ε_θ(x_t, t): [B, C, S, S] × [B] → [B, C, S, S]."""

    def __init__(self, arch: UNetArchitecture | dict | None = None, **overrides):
        super().__init__()
        if arch is None or isinstance(arch, dict):
            arch = UNetArchitecture(**{**(arch or {}), **overrides})
        elif overrides:
            arch = arch.model_copy(update=overrides)
        self.arch = arch
        ch, g, drop, ss = arch.channels, arch.norm_groups, arch.dropout, arch.scale_shift_norm
        emb_dim = 4 * ch
        self.time_embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.input_conv = nn.Conv2d(arch.in_channels, ch, 3, padding=1)

        def level(in_ch, out_ch, resolution):
            attn = AttentionBlock(out_ch, arch.num_heads, g) if resolution in arch.attention_resolutions else None
            return Level(ResBlock(in_ch, out_ch, emb_dim, drop, g, ss), attn)

        self.down = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        skip_widths = [ch]
        width, resolution = ch, arch.image_size
        for i, mult in enumerate(arch.channel_mult):
            blocks = nn.ModuleList()
            for _ in range(arch.num_res_blocks):
                blocks.append(level(width, ch * mult, resolution))
                width = ch * mult
                skip_widths.append(width)
            self.down.append(blocks)
            last = i == len(arch.channel_mult) - 1
            self.downsamplers.append(nn.Identity() if last else Downsample(width))
            if not last:
                skip_widths.append(width)
                resolution //= 2
        self.middle = nn.ModuleList([
            ResBlock(width, width, emb_dim, drop, g, ss),
            AttentionBlock(width, arch.num_heads, g),
            ResBlock(width, width, emb_dim, drop, g, ss),
        ])
        self.up = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for i, mult in reversed(list(enumerate(arch.channel_mult))):
            blocks = nn.ModuleList()
            for _ in range(arch.num_res_blocks + 1):
                blocks.append(level(width + skip_widths.pop(), ch * mult, resolution))
                width = ch * mult
            self.up.append(blocks)
            self.upsamplers.append(Upsample(width) if i > 0 else nn.Identity())
            if i > 0:
                resolution *= 2
        self.out = nn.Sequential(nn.GroupNorm(g, width), nn.SiLU(), zero_init(nn.Conv2d(width, arch.in_channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (self.arch.in_channels, self.arch.image_size, self.arch.image_size):
            raise ValueError(
                f"this U-Net takes [B, {self.arch.in_channels}, {self.arch.image_size}, {self.arch.image_size}] "
                f"inputs, got {list(x.shape)}"
            )
        emb = self.time_embed(timestep_embedding(t, self.arch.channels).to(x.dtype))
        h = self.input_conv(x)
        skips = [h]
        for blocks, downsample in zip(self.down, self.downsamplers):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            if not isinstance(downsample, nn.Identity):
                h = downsample(h)
                skips.append(h)
        h = self.middle[2](self.middle[1](self.middle[0](h, emb)), emb)
        for blocks, upsample in zip(self.up, self.upsamplers):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            h = upsample(h)
        return self.out(h)
