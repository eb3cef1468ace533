"""guided-diffusion (ADM) checkpoints: key correspondence on the published 256x256 model,
tiny round trips against an independent ADM forward pass, and safe loading."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from diffprior import BuildContext, ConfigError, load_config
from diffprior.cli.main import main
from diffprior_diffusers.adm import build_unet, convert_adm_state_dict
from diffprior_diffusers.flags import resolve_flags

from adm_reference import ADMReference

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from derive_adm_keys import adm_keys  # noqa: E402


def test_every_key_of_the_published_256_model_maps_to_a_parameter_of_its_shape():
    fixture = json.loads((FIXTURES / "adm_256x256_diffusion_uncond_keys.json").read_text())
    state = {key: torch.empty(shape, device="meta") for key, shape in fixture["keys"]}
    flags = resolve_flags("256x256_diffusion_uncond", {})
    converted = convert_adm_state_dict(state, flags)  # raises if a key is left over or missing
    unet = build_unet(flags, None)  # on the meta device: no memory, nothing run
    expected = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    assert sum(v.numel() for v in converted.values()) == fixture["parameters"] == 552_814_086


def test_a_key_the_flags_do_not_explain_is_reported():
    fixture = json.loads((FIXTURES / "adm_256x256_diffusion_uncond_keys.json").read_text())
    state = {key: torch.empty(shape, device="meta") for key, shape in fixture["keys"]}
    with pytest.raises(ValueError, match="do not explain .*label_emb"):
        convert_adm_state_dict(dict(state, **{"label_emb.weight": torch.empty(1000, 1024, device="meta")}),
                               resolve_flags("256x256_diffusion_uncond", {}))
    with pytest.raises(ValueError, match="flags expect are missing .*flags do not explain"):
        convert_adm_state_dict(state, resolve_flags("256x256_diffusion_uncond", {"num_res_blocks": 3}))


TINY = {
    "legacy-heads-updown-classes": dict(image_size=16, num_channels=32, num_res_blocks=1, channel_mult="1,2",
                                        attention_resolutions="8", num_heads=2, learn_sigma=True, class_cond=True,
                                        resblock_updown=True, use_scale_shift_norm=True),
    "conv-resample-head-channels-new-order": dict(image_size=16, num_channels=32, num_res_blocks=1, channel_mult="1,2",
                                                  attention_resolutions="16,8", num_head_channels=16,
                                                  use_new_attention_order=True, learn_sigma=False, class_cond=False,
                                                  resblock_updown=False, use_scale_shift_norm=False),
    "three-levels-four-heads": dict(image_size=16, num_channels=32, num_res_blocks=2, channel_mult="1,2,2",
                                    attention_resolutions="4", num_heads=4, learn_sigma=True, class_cond=False,
                                    resblock_updown=True, use_scale_shift_norm=True, noise_schedule="cosine",
                                    diffusion_steps=200),
}


def _random_adm_state(flags: dict, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    keys = adm_keys(image_size=flags["image_size"], num_channels=flags["num_channels"],
                    num_res_blocks=flags["num_res_blocks"], channel_mult=[int(m) for m in flags["channel_mult"].split(",")],
                    attention_resolutions=flags["attention_resolutions"], learn_sigma=flags["learn_sigma"],
                    class_cond=flags["class_cond"], resblock_updown=flags["resblock_updown"],
                    use_scale_shift_norm=flags["use_scale_shift_norm"])
    state = {}
    for key, shape in keys:
        value = 0.2 * torch.randn(shape, generator=g)
        if key.endswith("weight") and len(shape) == 1:  # GroupNorm scales near 1
            value = value + 1
        state[key] = value
    return state


def _toml_value(value):
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def _prior(tmp_path, checkpoint: Path, flags: dict, extra: str = ""):
    lines = "\n".join(f"{k} = {_toml_value(v)}" for k, v in flags.items())
    path = tmp_path / "run.toml"
    path.write_text(f'[prior]\ntype = "guided-diffusion"\ncheckpoint = "{checkpoint.name}"\n{lines}\n{extra}\n')
    return load_config(path).prior.build(BuildContext(device="cpu"))


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_round_trip_matches_an_independent_adm_forward(name, tmp_path):
    from safetensors.torch import save_file

    flags = TINY[name]
    state = _random_adm_state(flags)
    save_file(state, str(tmp_path / "model.safetensors"))
    label = "class_label = 3" if flags["class_cond"] else ""
    prior = _prior(tmp_path, tmp_path / "model.safetensors", flags, label)
    assert prior.shape == (3, 16, 16) and prior.data_range == (-1.0, 1.0)
    assert prior.T == flags.get("diffusion_steps", 1000)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 16, 16, generator=g)
    t = torch.tensor([3, prior.T - 1])
    reference = ADMReference(state, **{**flags, "channel_mult": [int(m) for m in flags["channel_mult"].split(",")]})
    expected = reference(x, t, torch.full((2,), 3) if flags["class_cond"] else None)[:, :3]
    with torch.no_grad():
        got = prior.eps(x, t)
    assert expected.abs().mean() > 0.1  # the comparison is not between two zeros
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_pt_state_dict_loads_the_same_as_safetensors(tmp_path):
    flags = TINY["three-levels-four-heads"]
    state = _random_adm_state(flags, seed=2)
    torch.save(state, tmp_path / "model.pt")
    prior = _prior(tmp_path, tmp_path / "model.pt", flags)
    reference = ADMReference(state, **{**flags, "channel_mult": [1, 2, 2]})
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([50])
    with torch.no_grad():
        torch.testing.assert_close(prior.eps(x, t), reference(x, t)[:, :3], rtol=1e-4, atol=1e-4)
    # the cosine schedule of guided-diffusion over 200 steps
    from diffprior import NoiseSchedule

    torch.testing.assert_close(prior.noise.alphas_cumprod, NoiseSchedule.cosine(200).alphas_cumprod)


class _Payload:
    """Unpickling this would create a file: the marker of code having run."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_payload_never_runs(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    torch.save({"input_blocks.0.0.weight": torch.zeros(1), "evil": _Payload(str(marker))}, tmp_path / "model.pt")
    config = tmp_path / "run.toml"
    config.write_text('[prior]\ntype = "guided-diffusion"\ncheckpoint = "model.pt"\npreset = "256x256_diffusion_uncond"\n')
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert "weights_only=True" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_flag_errors_point_at_the_fix(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match="did you mean '256x256_diffusion'"):
        _prior(tmp_path, tmp_path / "model.pt", {"preset": "256x256_difusion"})
    with pytest.raises(ConfigError, match="class_label"):
        _prior(tmp_path, tmp_path / "model.pt", {"preset": "256x256_diffusion"})
    with pytest.raises(ConfigError, match="0.5 has no UNet2DModel equivalent"):
        _prior(tmp_path, tmp_path / "model.pt", {"image_size": 512})


def test_prior_info_of_a_preset_reads_no_weights(tmp_path, capsys):
    empty = tmp_path / "256x256_diffusion_uncond.pt"
    empty.write_bytes(b"")  # never opened: the network is built on the meta device
    assert main(["prior-info", str(empty), "--preset", "256x256_diffusion_uncond", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {"type": "guided-diffusion", "shape": [3, 256, 256], "data_range": [-1.0, 1.0], "T": 1000,
                    "schedule": "linear", "prediction_type": "epsilon", "learned_variance": True,
                    "class_conditional": None, "parameters": 552_814_086}


def test_convert_writes_a_checkpoint_the_diffusers_prior_loads(tmp_path):
    from safetensors.torch import save_file

    flags = TINY["legacy-heads-updown-classes"]
    state = _random_adm_state(flags, seed=3)
    save_file(state, str(tmp_path / "model.safetensors"))
    original = _prior(tmp_path, tmp_path / "model.safetensors", flags, "class_label = 5")
    sets = [f"--set={k}={json.dumps(v)}" for k, v in flags.items()]
    out = tmp_path / "tiny-adm.safetensors"
    assert main(["convert", str(tmp_path / "model.safetensors"), "--out", str(out), *sets]) == 2  # class_label missing
    assert main(["convert", str(tmp_path / "model.safetensors"), "--out", str(out), "--set=class_label=5", *sets]) == 0
    (tmp_path / "c.toml").write_text(textwrap.dedent(f"""
        [prior]
        type = "diffusers"
        model = "{out.name}"
        class_label = 5
    """))
    converted = load_config(tmp_path / "c.toml").prior.build(BuildContext(device="cpu"))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 900])
    with torch.no_grad():
        assert torch.equal(converted.eps(x, t), original.eps(x, t))
    assert json.loads(out.with_suffix(".json").read_text())["attention_heads"] == 2
