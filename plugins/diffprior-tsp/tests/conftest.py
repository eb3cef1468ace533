import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_prior_path(tmp_path_factory):
    """An untrained 16×16 U-Net checkpoint marked as a 7-city tour prior (the pipeline, not quality)."""
    from diffprior import NoiseSchedule
    from diffprior_tsp.solver import mark_checkpoint
    from diffprior_unet.checkpoints import save_checkpoint
    from diffprior_unet.config import UNetArchitecture
    from diffprior_unet.model import UNet

    torch.manual_seed(0)
    arch = UNetArchitecture(image_size=16, channels=8, channel_mult=[1, 2], attention_resolutions=[], dropout=0.0)
    path = save_checkpoint(UNet(arch), tmp_path_factory.mktemp("prior") / "tiny7", noise=NoiseSchedule.linear(100))
    return mark_checkpoint(path, cities=7)
