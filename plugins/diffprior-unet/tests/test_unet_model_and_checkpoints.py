import json

import pytest
import torch
from diffprior import NoiseSchedule
from pydantic import ValidationError

from diffprior_unet.checkpoints import load_checkpoint, load_prior, save_checkpoint
from diffprior_unet.config import UNetArchitecture
from diffprior_unet.model import UNet

from unet_tiny_arch import TINY


def _trained_looking(model: UNet) -> UNet:
    # zero-initialised output layers would make every prediction 0: randomise all weights
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model.eval()


def test_unet_predicts_noise_shaped_output_and_uses_the_timestep():
    model = _trained_looking(UNet(TINY))
    x = torch.randn(3, 1, 8, 8)
    out_early = model(x, torch.tensor([10, 10, 10]))
    out_late = model(x, torch.tensor([900, 900, 900]))
    assert out_early.shape == x.shape
    assert not torch.allclose(out_early, out_late)


def test_unet_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"takes \[B, 1, 8, 8\]"):
        UNet(TINY)(torch.randn(2, 1, 16, 16), torch.tensor([1, 2]))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(image_size=10, channel_mult=[1, 2, 2]), "divisible by 2"),
        (dict(norm_groups=3), "norm_groups 3"),
        (dict(attention_resolutions=[5]), "not resolutions"),
        (dict(num_heads=3), "num_heads 3"),
    ],
)
def test_architecture_errors_say_what_is_wrong(change, message):
    with pytest.raises(ValidationError, match=message):
        UNetArchitecture(**{**TINY, **change})


def test_float32_checkpoint_reproduces_predictions_bit_for_bit(tmp_path):
    model = _trained_looking(UNet(TINY))
    path = save_checkpoint(model, tmp_path / "tiny", noise=NoiseSchedule.cosine(50), dtype="float32")
    loaded, meta = load_checkpoint(path)
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 7, 30, 49])
    assert torch.equal(model(x, t), loaded(x, t))
    assert meta["noise_schedule"] == {"name": "cosine", "T": 50}
    assert meta["shape"] == [1, 8, 8]


def test_float16_checkpoint_is_half_size_and_loads_as_float32(tmp_path):
    model = _trained_looking(UNet(TINY))
    noise = NoiseSchedule.linear(100)
    p16 = save_checkpoint(model, tmp_path / "half", noise=noise, dtype="float16")
    p32 = save_checkpoint(model, tmp_path / "full", noise=noise, dtype="float32")
    assert p16.stat().st_size < 0.6 * p32.stat().st_size
    prior = load_prior(p16)
    assert all(p.dtype == torch.float32 for p in prior.parameters())
    rounded = UNet(TINY).eval()
    rounded.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 80])
    assert torch.equal(prior.eps(x, t), rounded(x, t))
    assert prior.T == 100 and prior.shape == (1, 8, 8)


def test_checkpoint_json_mismatch_is_reported(tmp_path):
    path = save_checkpoint(UNet(TINY), tmp_path / "tiny", noise=NoiseSchedule.linear(100))
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["architecture"]["channels"] = 16
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match the architecture"):
        load_checkpoint(path)


def test_bf16_precision_prior_is_close_to_fp32_and_refuses_unknown_names(tmp_path):
    import pytest
    import torch
    from diffprior import NoiseSchedule

    from diffprior_unet.checkpoints import load_prior, save_checkpoint
    from diffprior_unet.config import UNetArchitecture
    from diffprior_unet.model import UNet
    from diffprior_unet.prior import UNetPrior

    torch.manual_seed(0)
    model = UNet(UNetArchitecture(image_size=8, channels=8, channel_mult=[1, 2], attention_resolutions=[4]))
    for p in model.parameters():  # the zero-initialised output layers would make ε ≡ 0
        torch.nn.init.normal_(p, std=0.05)
    path = save_checkpoint(model, tmp_path / "m", noise=NoiseSchedule.linear(50), dtype="float32")
    fp32, bf16 = load_prior(path), load_prior(path, precision="bf16")
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([1, 20, 49])
    a, b = fp32.eps(x, t), bf16.eps(x, t)
    assert b.dtype == torch.float32 and not torch.equal(a, b)  # it did run in bf16
    assert (a - b).abs().max() <= 0.05 * a.abs().max()
    with pytest.raises(ValueError, match="precision"):
        UNetPrior(model, NoiseSchedule.linear(50), precision="fp8")


def test_other_plugins_record_metadata_through_the_checkpoint_api(tmp_path):
    from diffprior_unet.checkpoints import copy_checkpoint, plugin_metadata, read_metadata, set_plugin_metadata

    path = save_checkpoint(UNet(TINY), tmp_path / "tiny", noise=NoiseSchedule.linear(100))
    assert plugin_metadata(path, "tsp") is None
    set_plugin_metadata(path, "tsp", {"cities": 50})
    copy = copy_checkpoint(path, tmp_path / "copies" / "again")
    assert copy.name == "again.safetensors"
    assert plugin_metadata(copy, "tsp") == {"cities": 50}
    assert read_metadata(copy)["shape"] == read_metadata(path)["shape"]  # the format's own keys are kept
    with pytest.raises(ValueError, match="belongs to diffprior-unet"):
        set_plugin_metadata(path, "architecture", {})
    load_prior(copy)  # still a loadable checkpoint


def test_cosine_checkpoint_with_its_own_data_range_round_trips_through_the_prior(tmp_path):
    """Not only the metadata: the loaded prior's ᾱ_t, noising, ε and denoising are those of a
    cosine schedule and a [0, 1] data range, by the run-config path and by load_prior."""
    from diffprior import BuildContext
    from diffprior import validate_config

    from diffprior_unet.prior import UNetPrior

    model = _trained_looking(UNet(TINY))
    noise = NoiseSchedule.cosine(50)
    path = save_checkpoint(model, tmp_path / "cosine01", noise=noise, data_range=(0.0, 1.0), dtype="float32")
    expected = UNetPrior(model, noise, data_range=(0.0, 1.0))
    from_config = validate_config({"prior": {"type": "unet", "checkpoint": str(path)}}).prior.build(BuildContext())
    for prior in (load_prior(path), from_config):
        assert prior.T == 50 and prior.data_range == (0.0, 1.0)
        assert torch.equal(prior.noise.alphas_cumprod, noise.alphas_cumprod)
        assert not torch.allclose(prior.noise.alphas_cumprod, NoiseSchedule.linear(50).alphas_cumprod, atol=1e-2)
        x0 = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        eps = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        t = torch.tensor([0, 10, 25, 49])
        ab = noise.alphas_cumprod[t].float().view(-1, 1, 1, 1)
        torch.testing.assert_close(prior.q_sample(x0, t, eps), ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
        x_t = prior.q_sample(x0, t, eps)
        assert torch.equal(prior.eps(x_t, t), model(x_t, t))
        for method in ("ddim", "ddpm"):
            gens = lambda: [torch.Generator().manual_seed(s) for s in range(4)]  # noqa: E731
            out = prior.denoise(x0, 30, steps=6, method=method, generators=gens())
            torch.testing.assert_close(out, expected.denoise(x0, 30, steps=6, method=method, generators=gens()))
            assert out.min() >= 0.0 and out.max() <= 1.0
