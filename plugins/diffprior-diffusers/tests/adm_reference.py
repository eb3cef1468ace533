"""A functional forward pass of a guided-diffusion UNetModel straight from its ADM state dict.

Written from openai/guided-diffusion ``unet.py`` (ResBlock, AttentionBlock with the legacy and
the new qkv order, up/down ResBlocks, timestep_embedding), independently of diffusers and of
diffprior's converter: the ground truth of the conversion tests.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def timestep_embedding(t, dim, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ADMReference:
    def __init__(self, sd, *, image_size, num_channels, num_res_blocks, channel_mult, attention_resolutions,
                 num_heads=1, num_head_channels=-1, use_scale_shift_norm=True, resblock_updown=False,
                 use_new_attention_order=False, class_cond=False, **_):
        self.sd = sd
        self.C, self.nres, self.mult = num_channels, num_res_blocks, list(channel_mult)
        self.attention_ds = {image_size // int(r) for r in str(attention_resolutions).split(",")}
        self.num_heads, self.num_head_channels = num_heads, num_head_channels
        self.scale_shift, self.updown = use_scale_shift_norm, resblock_updown
        self.new_order, self.class_cond = use_new_attention_order, class_cond

    def w(self, name):
        return self.sd[name]

    def norm(self, name, x):
        return F.group_norm(x.float(), 32, self.w(f"{name}.weight"), self.w(f"{name}.bias"), eps=1e-5)

    def conv(self, name, x, stride=1):
        weight = self.w(f"{name}.weight")
        return F.conv2d(x, weight, self.w(f"{name}.bias"), stride=stride, padding=weight.shape[-1] // 2)

    def res(self, name, x, emb, up=False, down=False):
        h = F.silu(self.norm(f"{name}.in_layers.0", x))
        if up:
            h, x = F.interpolate(h, scale_factor=2, mode="nearest"), F.interpolate(x, scale_factor=2, mode="nearest")
        if down:
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        h = self.conv(f"{name}.in_layers.2", h)
        e = F.linear(F.silu(emb), self.w(f"{name}.emb_layers.1.weight"), self.w(f"{name}.emb_layers.1.bias"))[..., None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm(f"{name}.out_layers.0", h) * (1 + scale) + shift
        else:
            h = self.norm(f"{name}.out_layers.0", h + e)
        h = self.conv(f"{name}.out_layers.3", F.silu(h))
        skip = self.conv(f"{name}.skip_connection", x) if f"{name}.skip_connection.weight" in self.sd else x
        return skip + h

    def attn(self, name, x):
        b, c, hh, ww = x.shape
        heads = c // self.num_head_channels if self.num_head_channels > 0 else self.num_heads
        flat = x.reshape(b, c, -1)
        qkv = F.conv1d(self.norm(f"{name}.norm", flat), self.w(f"{name}.qkv.weight"), self.w(f"{name}.qkv.bias"))
        ch, length = c // heads, flat.shape[-1]
        if self.new_order:
            q, k, v = (part.reshape(b * heads, ch, length) for part in qkv.chunk(3, dim=1))
        else:
            q, k, v = qkv.reshape(b * heads, 3 * ch, length).split(ch, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        weight = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
        a = torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, length)
        h = F.conv1d(a, self.w(f"{name}.proj_out.weight"), self.w(f"{name}.proj_out.bias"))
        return (flat + h).reshape(b, c, hh, ww)

    def block(self, name, h, emb, ds, *, down=False, up=False, resample_index=None):
        """One TimestepEmbedSequential: a ResBlock, maybe attention, maybe a resampler."""
        if down:  # a downsampling block alone
            return self.res(f"{name}.0", h, emb, down=True) if self.updown else self.conv(f"{name}.0.op", h, stride=2)
        h = self.res(f"{name}.0", h, emb)
        if ds in self.attention_ds:
            h = self.attn(f"{name}.1", h)
        if up:
            if self.updown:
                h = self.res(f"{name}.{resample_index}", h, emb, up=True)
            else:
                h = self.conv(f"{name}.{resample_index}.conv", F.interpolate(h, scale_factor=2, mode="nearest"))
        return h

    @torch.no_grad()
    def __call__(self, x, t, y=None):
        emb = timestep_embedding(t, self.C)
        emb = F.linear(F.silu(F.linear(emb, self.w("time_embed.0.weight"), self.w("time_embed.0.bias"))),
                       self.w("time_embed.2.weight"), self.w("time_embed.2.bias"))
        if self.class_cond:
            emb = emb + self.w("label_emb.weight")[y]
        h = self.conv("input_blocks.0.0", x)
        hs, ds, k = [h], 1, 1
        for level in range(len(self.mult)):
            for _ in range(self.nres):
                h = self.block(f"input_blocks.{k}", h, emb, ds)
                hs.append(h)
                k += 1
            if level != len(self.mult) - 1:
                h = self.block(f"input_blocks.{k}", h, emb, ds, down=True)
                hs.append(h)
                ds *= 2
                k += 1
        h = self.res("middle_block.0", h, emb)
        h = self.attn("middle_block.1", h)
        h = self.res("middle_block.2", h, emb)
        k = 0
        for level in reversed(range(len(self.mult))):
            for i in range(self.nres + 1):
                h = torch.cat([h, hs.pop()], dim=1)
                up = level > 0 and i == self.nres
                index = 2 if ds in self.attention_ds else 1
                h = self.block(f"output_blocks.{k}", h, emb, ds, up=up, resample_index=index)
                if up:
                    ds //= 2
                k += 1
        return self.conv("out.2", F.silu(self.norm("out.0", h)))
