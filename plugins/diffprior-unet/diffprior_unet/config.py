"""The U-Net architecture as a plain pydantic model (no torch): used by training configs,
checkpoint JSON files and the prior config alike."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class UNetArchitecture(BaseModel):
    """Hyper-parameters of :class:`diffprior_unet.model.UNet` (ADM / guided-diffusion style)."""

    model_config = ConfigDict(extra="forbid")
    image_size: int = Field(32, gt=0, description="height = width of a sample")
    in_channels: int = Field(1, gt=0, description="channels of a sample (ε has the same)")
    channels: int = Field(32, gt=0, description="base channel count")
    channel_mult: list[int] = Field([1, 2, 2], min_length=1, description="channel multiplier per resolution")
    num_res_blocks: int = Field(1, gt=0, description="residual blocks per resolution")
    attention_resolutions: list[int] = Field([8], description="resolutions (in pixels) with self-attention")
    num_heads: int = Field(4, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    norm_groups: int = Field(8, gt=0, description="GroupNorm groups (must divide every channel count)")
    scale_shift_norm: bool = Field(True, description="FiLM the timestep in as GroupNorm scale and shift")

    @model_validator(mode="after")
    def _consistent(self):
        levels = len(self.channel_mult)
        if self.image_size % 2 ** (levels - 1):
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2^{levels - 1} for {levels} resolutions "
                f"(channel_mult {self.channel_mult}); pad the data or use fewer levels"
            )
        widths = sorted({self.channels * m for m in self.channel_mult})
        bad = [w for w in widths if w % self.norm_groups]
        if bad:
            raise ValueError(f"norm_groups {self.norm_groups} does not divide channel count(s) {bad}")
        attn_widths = [self.channels * m for i, m in enumerate(self.channel_mult)
                       if self.image_size // 2**i in self.attention_resolutions]
        bad = [w for w in attn_widths if w % self.num_heads]
        if bad:
            raise ValueError(f"num_heads {self.num_heads} does not divide attention channel count(s) {bad}")
        resolutions = {self.image_size // 2**i for i in range(levels)}
        missing = sorted(set(self.attention_resolutions) - resolutions)
        if missing:
            raise ValueError(
                f"attention_resolutions {missing} are not resolutions of this U-Net (it has {sorted(resolutions)})"
            )
        return self
