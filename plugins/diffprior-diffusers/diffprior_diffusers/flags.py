"""guided-diffusion (ADM) training flags and presets for the published checkpoints. No torch.

The flags are those of openai/guided-diffusion's ``script_util.create_model_and_diffusion``
(same names, same defaults); a preset fills in the flags a published checkpoint was trained
with (from the guided-diffusion README), and any flag given explicitly overrides it.
"""

from __future__ import annotations

import difflib
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NUM_CLASSES = 1000  # every class-conditional ADM model is an ImageNet model

_IMAGENET = dict(attention_resolutions="32,16,8", diffusion_steps=1000, learn_sigma=True, noise_schedule="linear",
                 num_channels=256, num_res_blocks=2, resblock_updown=True, use_scale_shift_norm=True)
_LSUN = dict(_IMAGENET, class_cond=False, image_size=256, num_head_channels=64, dropout=0.1)

# name → flags, and where the weights come from (printed when a checkpoint is missing)
PRESETS: dict[str, dict[str, Any]] = {
    "64x64_diffusion": dict(_IMAGENET, class_cond=True, dropout=0.1, image_size=64, noise_schedule="cosine",
                            num_channels=192, num_head_channels=64, num_res_blocks=3, use_new_attention_order=True),
    "128x128_diffusion": dict(_IMAGENET, class_cond=True, image_size=128, num_heads=4),
    "256x256_diffusion": dict(_IMAGENET, class_cond=True, image_size=256, num_head_channels=64),
    "256x256_diffusion_uncond": dict(_IMAGENET, class_cond=False, image_size=256, num_head_channels=64),
    "lsun_bedroom": dict(_LSUN),
    "lsun_cat": dict(_LSUN),
    "lsun_horse": dict(_LSUN),
    "lsun_horse_nodropout": dict(_LSUN, dropout=0.0),
    # FFHQ 256 in the ADM code base, as released with DPS (Chung et al. 2023): the face prior
    # most plug-and-play work uses (ffhq_10m.pt)
    "ffhq_10m": dict(image_size=256, num_channels=128, num_res_blocks=1, learn_sigma=True, class_cond=False,
                     attention_resolutions="16", num_heads=4, num_head_channels=64, use_scale_shift_norm=True,
                     resblock_updown=True, noise_schedule="linear", diffusion_steps=1000),
}
PRESET_SOURCES = {name: f"https://openaipublic.blob.core.windows.net/diffusion/jul-2021/{name}.pt"
                  for name in PRESETS if name != "ffhq_10m"}
PRESET_SOURCES["ffhq_10m"] = "the DPS release (github.com/DPS2022/diffusion-posterior-sampling, 'ffhq_10m.pt')"


def _int_list(value: Any) -> Any:
    """guided-diffusion writes lists as "32,16,8"; accept that or a list."""
    if isinstance(value, str):
        value = value.strip()
        return [int(v) for v in value.split(",")] if value else []
    return value


class ADMFlags(BaseModel):
    """The flags a guided-diffusion model was trained with (``MODEL_FLAGS`` of its README)."""

    model_config = ConfigDict(extra="forbid")
    image_size: int = Field(64, gt=0)
    num_channels: int = Field(128, gt=0)
    num_res_blocks: int = Field(2, gt=0)
    channel_mult: list[float] = Field(default_factory=list, description="empty: guided-diffusion's default for image_size")
    attention_resolutions: list[int] = Field([16, 8], description="resolutions in pixels, e.g. '32,16,8'")
    num_heads: int = Field(4, gt=0)
    num_head_channels: int = Field(-1, description="channels per head; -1: use num_heads")
    num_heads_upsample: int = Field(-1, description="deprecated in guided-diffusion; -1: num_heads")
    learn_sigma: bool = False
    class_cond: bool = False
    use_scale_shift_norm: bool = True
    resblock_updown: bool = False
    use_new_attention_order: bool = False
    noise_schedule: str = "linear"
    diffusion_steps: int = Field(1000, gt=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="training only; a prior runs without dropout")
    use_fp16: bool = Field(False, description="training only; use the prior's dtype instead")
    use_checkpoint: bool = Field(False, description="training only; use gradient_checkpointing instead")
    in_channels: int = Field(3, gt=0)

    @field_validator("attention_resolutions", "channel_mult", mode="before")
    @classmethod
    def _lists(cls, value):
        return _int_list(value) if not (isinstance(value, str) and "." in value) else [float(v) for v in value.split(",")]

    @model_validator(mode="after")
    def _consistent(self):
        if not self.channel_mult:
            defaults = {512: [0.5, 1, 1, 2, 2, 4, 4], 256: [1, 1, 2, 2, 4, 4], 128: [1, 1, 2, 3, 4], 64: [1, 2, 3, 4]}
            if self.image_size not in defaults:
                raise ValueError(f"image_size {self.image_size} has no default channel_mult in guided-diffusion "
                                 "(64, 128, 256, 512); give channel_mult = '1,2,2,...'")
            self.channel_mult = defaults[self.image_size]
        if self.channel_mult[0] != 1 or any(m != int(m) for m in self.channel_mult):
            raise ValueError(f"channel_mult {self.channel_mult}: the first level must be 1 and all integers "
                             "(the 512x512 model's 0.5 has no UNet2DModel equivalent)")
        self.channel_mult = [int(m) for m in self.channel_mult]
        if self.noise_schedule not in ("linear", "cosine"):
            raise ValueError(f"noise_schedule {self.noise_schedule!r}: guided-diffusion has 'linear' and 'cosine'")
        levels = len(self.channel_mult)
        if self.image_size % 2 ** (levels - 1):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2^{levels - 1} ({levels} levels)")
        resolutions = {self.image_size // 2**i for i in range(levels)}
        bad = sorted(set(self.attention_resolutions) - resolutions)
        if bad:
            raise ValueError(f"attention_resolutions {bad} are not resolutions of this model ({sorted(resolutions)})")
        for level in self.attention_levels:
            width = self.num_channels * self.channel_mult[level]
            if self.num_head_channels > 0 and width % self.num_head_channels:
                raise ValueError(f"num_head_channels {self.num_head_channels} does not divide {width} channels")
            if self.num_head_channels <= 0 and width % self.num_heads:
                raise ValueError(f"num_heads {self.num_heads} does not divide {width} channels")
        if self.num_heads_upsample not in (-1, self.num_heads) and self.num_head_channels <= 0:
            raise ValueError("num_heads_upsample different from num_heads is not supported")
        for width in {self.num_channels * m for m in self.channel_mult}:
            if width % 32:
                raise ValueError(f"{width} channels are not divisible by the 32 GroupNorm groups of ADM")
        return self

    @property
    def attention_levels(self) -> list[int]:
        """Levels (0 = full resolution) with self-attention."""
        return [i for i in range(len(self.channel_mult)) if self.image_size // 2**i in self.attention_resolutions]

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)

    @property
    def num_classes(self) -> Optional[int]:
        return NUM_CLASSES if self.class_cond else None


def preset_names() -> list[str]:
    return sorted(PRESETS)


def resolve_flags(preset: Optional[str], given: dict[str, Any]) -> ADMFlags:
    """A preset's flags overridden by the ones given; ValueError naming the presets for an unknown one."""
    data: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            close = difflib.get_close_matches(preset, PRESETS, n=1)
            raise ValueError(f"unknown guided-diffusion preset {preset!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                             + f"; presets: {', '.join(preset_names())}")
        data.update(PRESETS[preset])
    data.update({k: v for k, v in given.items() if v is not None})
    return ADMFlags.model_validate(data)


FlagValue = Union[int, float, bool, str, list]
