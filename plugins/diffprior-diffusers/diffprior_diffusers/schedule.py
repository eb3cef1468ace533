"""Noise schedules from a diffusers scheduler config, in float64.

Any discrete-time DDPM-family scheduler (DDPM, DDIM, PNDM, ...) stores the training schedule
in the same keys: ``beta_schedule`` (``linear``, ``scaled_linear``, ``squaredcos_cap_v2``,
``sigmoid``), ``beta_start``, ``beta_end``, ``trained_betas`` and ``num_train_timesteps``.
Continuous-time schedulers (score SDE, Karras, consistency models) have none of these and
are refused.
"""

from __future__ import annotations

import math

import torch

from diffprior import ConfigError, NoiseSchedule

SUPPORTED = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")


def betas_from_scheduler_config(config: dict) -> tuple[torch.Tensor, str]:
    """(β_0..β_{T-1} as float64, a short name) for a scheduler config dict."""
    cls = config.get("_class_name", "the scheduler")
    if "beta_schedule" not in config and config.get("trained_betas") is None:
        raise ConfigError(
            f"{cls} has no beta schedule (no 'beta_schedule' or 'trained_betas' in its config): it is not a "
            "discrete-time DDPM scheduler; diffprior needs a DDPM/DDIM-style noise schedule"
        )
    if config.get("rescale_betas_zero_snr"):
        raise ConfigError(f"{cls} rescales betas to zero terminal SNR (ᾱ_T = 0), where an ε-prediction is undefined; "
                          "not supported")
    T = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.0001)), float(config.get("beta_end", 0.02))
    trained = config.get("trained_betas")
    if trained is not None:
        betas = torch.as_tensor(trained, dtype=torch.float64).flatten()
        name = "trained_betas"
    else:
        name = config["beta_schedule"]
        if name == "linear":
            betas = torch.linspace(start, end, T, dtype=torch.float64)
        elif name == "scaled_linear":  # linear in sqrt(β): the latent-diffusion schedule
            betas = torch.linspace(start**0.5, end**0.5, T, dtype=torch.float64) ** 2
        elif name == "squaredcos_cap_v2":  # Nichol & Dhariwal's cosine, β capped at 0.999
            f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
            betas = torch.tensor([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)], dtype=torch.float64)
        elif name == "sigmoid":
            betas = torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64)) * (end - start) + start
        else:
            raise ConfigError(f"{cls}: beta_schedule {name!r} is not supported; supported: {', '.join(SUPPORTED)}, trained_betas")
    if betas.numel() < 2:
        raise ConfigError(f"{cls}: the schedule has {betas.numel()} step(s); a DDPM needs at least 2")
    return betas, name


def noise_schedule_from_scheduler_config(config: dict) -> NoiseSchedule:
    betas, name = betas_from_scheduler_config(config)
    try:
        return NoiseSchedule(betas, name=name)
    except ValueError as exc:
        raise ConfigError(f"{config.get('_class_name', 'the scheduler')}: {exc}") from None


def scheduler_config_for(noise_name: str, T: int) -> dict:
    """A DDPMScheduler config with guided-diffusion's schedule ``noise_name`` over T steps.

    guided-diffusion scales the linear endpoints by 1000/T; diffusers does not, so the scaled
    endpoints are written out."""
    if noise_name == "linear":
        scale = 1000 / T
        return {"_class_name": "DDPMScheduler", "num_train_timesteps": T, "beta_schedule": "linear",
                "beta_start": 0.0001 * scale, "beta_end": 0.02 * scale, "prediction_type": "epsilon",
                "clip_sample": True, "clip_sample_range": 1.0}
    if noise_name == "cosine":
        return {"_class_name": "DDPMScheduler", "num_train_timesteps": T, "beta_schedule": "squaredcos_cap_v2",
                "prediction_type": "epsilon", "clip_sample": True, "clip_sample_range": 1.0}
    raise ConfigError(f"noise schedule {noise_name!r}: use 'linear' or 'cosine'")
