"""The ``diffusers`` prior on tiny real UNet2DModels saved by diffusers itself."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from diffprior import BuildContext, ConfigError, load_config
from diffprior.cli.main import main
from diffprior_diffusers.prior import eps_from_prediction
from diffprior_diffusers.schedule import betas_from_scheduler_config

from tiny_models import save_pipeline, tiny_unet


def _config_file(folder, body: str):
    path = folder / "run.toml"
    path.write_text(textwrap.dedent(body))
    return path


def _prior_from_config(tmp_path, model: str, extra: str = ""):
    path = _config_file(tmp_path, f"""
        [prior]
        type = "diffusers"
        model = "{model}"
        {extra}
    """)
    config = load_config(path)
    return config.prior.build(BuildContext(device="cpu"))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return save_pipeline(tmp_path_factory.mktemp("pipe") / "tiny-ddpm")


def _xt(prior, batch=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *prior.shape, generator=g)
    t = torch.tensor([0, 37, prior.T - 1][:batch])
    return x, t


def test_eps_is_the_models_own_output(pipeline, tmp_path):
    # model path relative to the config file's folder
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "p").symlink_to(pipeline)
    prior = _prior_from_config(tmp_path, "models/p")
    assert prior.shape == (3, 8, 8) and prior.T == 100 and prior.data_range == (-1.0, 1.0)
    x, t = _xt(prior)
    from diffusers import UNet2DModel

    reference = UNet2DModel.from_pretrained(str(pipeline), subfolder="unet").eval()
    with torch.no_grad():
        assert torch.equal(prior.eps(x, t), reference(x, t).sample)


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"])
@pytest.mark.parametrize("T", [50, 1000])
def test_schedule_matches_the_schedulers_own(schedule, T):
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=T, beta_schedule=schedule)
    betas, name = betas_from_scheduler_config(dict(scheduler.config))
    assert name == schedule and betas.dtype == torch.float64 and betas.numel() == T
    torch.testing.assert_close(betas.float(), scheduler.betas, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.cumprod(1 - betas, 0).float(), scheduler.alphas_cumprod, rtol=1e-4, atol=1e-7)


def test_trained_betas_are_taken_as_given():
    trained = [0.001 * (i + 1) for i in range(20)]
    betas, name = betas_from_scheduler_config({"trained_betas": trained, "num_train_timesteps": 20})
    assert name == "trained_betas" and torch.equal(betas, torch.tensor(trained, dtype=torch.float64))


def test_continuous_time_schedulers_are_refused():
    with pytest.raises(ConfigError, match="not a discrete-time DDPM scheduler"):
        betas_from_scheduler_config({"_class_name": "ScoreSdeVeScheduler", "num_train_timesteps": 2000, "sigma_max": 348})


def test_v_and_sample_conversions_satisfy_the_identities():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, 4, 4, generator=g), torch.randn(5, 3, 4, 4, generator=g)
    a = torch.rand(5, 1, 1, 1, generator=g) * 0.98 + 0.01
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    torch.testing.assert_close(eps_from_prediction(v, x_t, a, "v_prediction"), eps, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eps_from_prediction(x0, x_t, a, "sample"), eps, rtol=1e-4, atol=1e-4)
    assert eps_from_prediction(eps, x_t, a, "epsilon") is eps


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_eps_agrees_with_the_schedulers_own_x0(prediction_type, tmp_path):
    """DDPMScheduler.step turns the model output into x̂_0 its own way; ε follows from x̂_0."""
    from diffusers import DDPMScheduler, UNet2DModel

    folder = save_pipeline(tmp_path / "p", prediction_type=prediction_type)
    prior = _prior_from_config(tmp_path, str(folder))
    assert prior.prediction_type == prediction_type
    unet = UNet2DModel.from_pretrained(str(folder), subfolder="unet").eval()
    scheduler = DDPMScheduler.from_pretrained(str(folder), subfolder="scheduler")
    x, _ = _xt(prior, batch=1)
    for step in (5, 60, 99):
        t = torch.tensor([step])
        with torch.no_grad():
            x0 = scheduler.step(unet(x, t).sample, step, x).pred_original_sample
            a = scheduler.alphas_cumprod[step]
            expected = (x - a.sqrt() * x0) / (1 - a).sqrt()
            torch.testing.assert_close(prior.eps(x, t), expected, rtol=1e-4, atol=1e-4)


def test_learned_variance_uses_the_first_channels(tmp_path):
    folder = save_pipeline(tmp_path / "p", out_channels=6)
    prior = _prior_from_config(tmp_path, str(folder))
    x, t = _xt(prior)
    with torch.no_grad():
        full = prior.unet(x, t).sample
        assert full.shape[1] == 6
        assert torch.equal(prior.eps(x, t), full[:, :3])
    assert prior.describe()["learned_variance"] is True


def test_class_conditional_takes_the_class_from_the_config(tmp_path):
    folder = save_pipeline(tmp_path / "p", num_class_embeds=4)
    with pytest.raises(ConfigError, match="class-conditional .*class_label"):
        _prior_from_config(tmp_path, str(folder))
    prior = _prior_from_config(tmp_path, str(folder), "class_label = 2")
    x, t = _xt(prior)
    with torch.no_grad():
        assert torch.equal(prior.eps(x, t), prior.unet(x, t, class_labels=torch.full((3,), 2)).sample)
        assert not torch.equal(prior.eps(x, t), prior.unet(x, t, class_labels=torch.full((3,), 1)).sample)


def test_half_weights_and_checkpointing_keep_eps_and_its_gradient(pipeline, tmp_path):
    base = _prior_from_config(tmp_path, str(pipeline))
    ckpt = _prior_from_config(tmp_path, str(pipeline), "gradient_checkpointing = true")
    half = _prior_from_config(tmp_path, str(pipeline), 'dtype = "bf16"')
    x, t = _xt(base)
    grads = []
    for prior in (base, ckpt, half):
        xi = x.clone().requires_grad_(True)
        out = prior.eps(xi, t)
        assert out.dtype == torch.float32
        out.pow(2).sum().backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[1], grads[0])  # checkpointing recomputes exactly
    assert half.model_dtype == torch.bfloat16
    cos = torch.nn.functional.cosine_similarity(grads[2].flatten(), grads[0].flatten(), dim=0)
    assert cos > 0.98


@pytest.mark.parametrize("component,message", [("vqvae", "latent-diffusion"), ("text_encoder", "text-conditioned")])
def test_latent_and_text_pipelines_are_refused(pipeline, tmp_path, component, message):
    import shutil

    folder = tmp_path / "p"
    shutil.copytree(pipeline, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index[component] = ["diffusers", "VQModel"]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match=message):
        _prior_from_config(tmp_path, str(folder))


def test_text_conditioned_unet_is_refused(pipeline, tmp_path):
    import shutil

    folder = tmp_path / "p"
    shutil.copytree(pipeline, folder)
    config = json.loads((folder / "unet" / "config.json").read_text())
    config["_class_name"] = "UNet2DConditionModel"
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="text-conditioned UNet2DConditionModel"):
        _prior_from_config(tmp_path, str(folder))


def test_hub_id_offline_is_one_line_exit_2(tmp_path, capsys):
    path = _config_file(tmp_path, """
        [prior]
        type = "diffusers"
        model = "google/ddpm-celebahq-256"
    """)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "google/ddpm-celebahq-256" in err and "HF_HUB_OFFLINE=1" in err and "hf download google/ddpm-celebahq-256" in err


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        _prior_from_config(tmp_path, "./no/such/folder")


def test_run_convert_and_prior_info(pipeline, tmp_path, capsys):
    path = _config_file(tmp_path, f"""
        batch = 2
        [prior]
        type = "diffusers"
        model = "{pipeline}"
        [optimizer]
        steps = 2
        [denoise]
        from_t = 5
    """)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"metrics.json", "samples.png", "samples.safetensors"} <= names
    capsys.readouterr()

    assert main(["prior-info", str(pipeline), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [3, 8, 8] and info["T"] == 100 and info["schedule"] == "linear"
    assert info["prediction_type"] == "epsilon" and info["data_range"] == [-1.0, 1.0]
    assert info["parameters"] == sum(p.numel() for p in tiny_unet().parameters())

    target = tmp_path / "converted" / "tiny.safetensors"
    assert main(["convert", str(pipeline), "--out", str(target)]) == 0
    assert main(["convert", str(pipeline), "--out", str(target)]) == 2  # never replaced silently
    meta = json.loads(target.with_suffix(".json").read_text())
    assert meta["format"] == "diffprior-diffusers/1" and meta["T"] == 100 and meta["shape"] == [3, 8, 8]
    original = _prior_from_config(tmp_path, str(pipeline))
    converted = _prior_from_config(tmp_path, str(target))
    x, t = _xt(original)
    with torch.no_grad():
        assert torch.equal(converted.eps(x, t), original.eps(x, t))
    capsys.readouterr()
    assert main(["prior-info", str(target)]) == 0
    text = capsys.readouterr().out
    assert "prediction type:" in text and "[3, 8, 8]" in text
