"""Tiny real diffusers models saved with save_pretrained, for the tests."""

from __future__ import annotations

from pathlib import Path


def tiny_unet(*, channels: int = 3, out_channels: int | None = None, size: int = 8, num_class_embeds=None, seed: int = 0):
    import torch
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=out_channels or channels, layers_per_block=1,
                       block_out_channels=(16, 32), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=8,
                       num_class_embeds=num_class_embeds)
    # diffusers zero-initialises nothing here, but make every weight matter for the comparisons
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return unet.eval()


def save_pipeline(folder: Path, *, prediction_type: str = "epsilon", beta_schedule: str = "linear", T: int = 100,
                  **unet_kwargs) -> Path:
    """A DDPMPipeline (unet/ + scheduler/ + model_index.json) written by diffusers itself."""
    from diffusers import DDPMPipeline, DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=T, beta_schedule=beta_schedule, prediction_type=prediction_type,
                              clip_sample=False)
    DDPMPipeline(unet=tiny_unet(**unet_kwargs), scheduler=scheduler).save_pretrained(str(folder))
    return folder
