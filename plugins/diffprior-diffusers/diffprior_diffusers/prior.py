"""A diffusers UNet2DModel as a :class:`diffprior.Prior`: ε_θ(x_t, t) whatever the model predicts."""

from __future__ import annotations

import torch

from diffprior import Prior

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def eps_from_prediction(output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The ε a model's output implies, with x_t = √ᾱ·x_0 + √(1−ᾱ)·ε.

    - ``epsilon``: the output is ε;
    - ``sample``: the output is x̂_0, so ε = (x_t − √ᾱ·x̂_0) / √(1−ᾱ);
    - ``v_prediction``: v = √ᾱ·ε − √(1−ᾱ)·x_0, so ε = √ᾱ·v + √(1−ᾱ)·x_t.
    ``alpha_bar`` broadcasts against ``x_t``.
    """
    if prediction_type == "epsilon":
        return output
    if prediction_type == "sample":
        return (x_t - alpha_bar.sqrt() * output) / (1 - alpha_bar).sqrt()
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * output + (1 - alpha_bar).sqrt() * x_t
    raise ValueError(f"unknown prediction_type {prediction_type!r}: use one of {', '.join(PREDICTION_TYPES)}")


class DiffusersPrior(Prior):
    """ε_θ from a UNet2DModel run in ``dtype``; the output is converted to ε in float32.

    A model with learned variance (2C output channels) contributes its first C channels (the
    mean prediction). Class-conditional models get ``class_label`` for every sample.
    """

    def __init__(self, unet, noise, *, shape, data_range=(-1.0, 1.0), prediction_type: str = "epsilon",
                 class_label: int | None = None, metadata: dict | None = None):
        super().__init__(noise, shape, data_range)
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {prediction_type!r}: use one of {', '.join(PREDICTION_TYPES)}")
        self.unet = unet
        self.prediction_type = prediction_type
        self.class_label = class_label
        self.metadata = metadata or {}
        self.run_device: torch.device | None = None  # set when the network runs on another device than the run

    @property
    def device(self) -> torch.device:
        return self.run_device if self.run_device is not None else super().device

    @property
    def model_dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def model_output(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's own output for the first C channels, as float32."""
        model_device = next(self.unet.parameters()).device
        labels = None
        if self.class_label is not None:
            labels = torch.full((x_t.shape[0],), self.class_label, dtype=torch.long, device=model_device)
        out = self.unet(x_t.to(model_device, self.model_dtype), t.to(model_device), class_labels=labels, return_dict=False)[0]
        return out[:, : self.shape[0]].float().to(x_t.device)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.model_output(x_t, t)
        if self.prediction_type == "epsilon":
            return out
        a = self.noise.alpha_bar(t, x_t.float())
        return eps_from_prediction(out, x_t.float(), a, self.prediction_type).to(x_t.dtype)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    def describe(self) -> dict:
        """What ``diffprior prior-info`` prints."""
        return {
            "shape": list(self.shape),
            "data_range": list(self.data_range),
            "T": self.T,
            "schedule": self.noise.name,
            "prediction_type": self.prediction_type,
            "learned_variance": bool(self.metadata.get("learned_variance", False)),
            "class_conditional": self.metadata.get("num_classes"),
            "parameters": self.parameter_count(),
            "dtype": str(self.model_dtype).replace("torch.", ""),
        }


def make_prior(unet, unet_config, scheduler_config, info, class_label, extra: dict):
    """A :class:`DiffusersPrior` around ``unet`` with the noise schedule of ``scheduler_config``."""
    from .schedule import noise_schedule_from_scheduler_config

    noise = noise_schedule_from_scheduler_config(scheduler_config)
    metadata = dict(info, unet_config=unet_config, scheduler_config=scheduler_config, **extra)
    return DiffusersPrior(unet, noise, shape=info["shape"], data_range=info["data_range"],
                          prediction_type=info["prediction_type"], class_label=class_label, metadata=metadata)
