"""deepinv Physics from an :class:`~diffprior_deepinv.operators.OperatorSpec` (imports deepinv)."""

from __future__ import annotations

import torch

from diffprior import ConfigError


def _noise_model(spec, rng):
    import deepinv as dinv

    if spec.noise == "gaussian":
        return dinv.physics.GaussianNoise(sigma=spec.sigma, rng=rng)
    if spec.noise == "poisson":
        return dinv.physics.PoissonNoise(gain=spec.gain, rng=rng)
    return dinv.physics.ZeroNoise()


def load_array(path, key: str, what: str) -> torch.Tensor:
    """A tensor from a .safetensors file (tensor ``key``) or a .npy file; one-line errors."""
    from pathlib import Path

    path = Path(path)
    if path.suffix == ".npy":
        import numpy as np

        if not path.is_file():
            raise ConfigError(f"{what} {path} not found")
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False)).float()
        except Exception as exc:  # ValueError (pickled or corrupted), OSError
            raise ConfigError(f"{what} {path} is not a readable .npy array ({' '.join(str(exc).split())[:120]})") from None
    from diffprior import load_tensors

    tensors = load_tensors(path, what=what)
    if key not in tensors:
        raise ConfigError(f"{what} {path} has no {key!r} tensor (it has {sorted(tensors)})")
    return tensors[key].float()


def _blur_kernel(spec) -> torch.Tensor:
    from deepinv.physics.functional import gaussian_blur

    if spec.kernel == "gaussian":
        return gaussian_blur(sigma=(spec.width, spec.width))
    size = max(int(round(spec.width)), 1)
    return torch.full((1, 1, size, size), 1.0 / size**2)


def build_physics(spec, shape: tuple, device="cpu"):
    """The operator of ``spec`` for images of ``shape`` [C, H, W], with its noise model.

    Random parts (a ratio mask, a compressed-sensing matrix) are drawn from a generator seeded
    with ``spec.seed``: the same config always gives the same operator."""
    import deepinv as dinv

    if len(shape) != 3:
        raise ConfigError(f"terms: the physics term needs image samples of shape (C, H, W); got {list(shape)}")
    C, H, W = shape
    rng = torch.Generator(device).manual_seed(spec.seed)
    noise = _noise_model(spec, torch.Generator(device).manual_seed(spec.seed + 1))
    if spec.operator == "inpainting":
        if spec.mask is not None:
            mask = load_array(spec.mask, "mask", "terms: physics mask")
            try:
                mask = mask.expand(shape).clone()
            except RuntimeError:
                raise ConfigError(f"terms: physics mask {spec.mask} has shape {list(mask.shape)}; the images have shape {list(shape)}") from None
            physics = dinv.physics.Inpainting(img_size=shape, mask=mask.to(device), device=device, noise_model=noise)
        else:
            physics = dinv.physics.Inpainting(img_size=shape, mask=float(spec.ratio), device=device, rng=rng, noise_model=noise)
    elif spec.operator == "downsampling":
        if H % spec.factor or W % spec.factor:
            raise ConfigError(f"terms: downsampling factor {spec.factor} does not divide the image size {H}×{W}")
        physics = dinv.physics.Downsampling(img_size=shape, factor=spec.factor, device=device, padding="circular",
                                            filter=None if spec.filter == "none" else spec.filter, noise_model=noise)
    elif spec.operator == "blur":
        physics = dinv.physics.BlurFFT(img_size=shape, filter=_blur_kernel(spec).to(device), device=device, noise_model=noise)
    elif spec.operator == "compressed-sensing":
        physics = dinv.physics.CompressedSensing(m=spec.measurements, img_size=shape, device=device, rng=rng, noise_model=noise)
    elif spec.operator == "denoising":
        physics = dinv.physics.Denoising(noise_model=noise, device=device)
    else:  # the config validated the name
        raise ConfigError(f"terms: unknown operator {spec.operator!r}")
    return physics


def output_shape(physics, shape: tuple, device="cpu") -> tuple:
    """The shape of A(x) for one image of ``shape`` (one forward pass of zeros)."""
    with torch.no_grad():
        return tuple(physics.A(torch.zeros(1, *shape, device=device)).shape[1:])


def operator_tensors(physics) -> dict:
    """The operator's parameters worth saving beside measurements (a mask, a blur kernel)."""
    out = {}
    for name in ("mask", "filter"):
        value = getattr(physics, name, None)
        if isinstance(value, torch.Tensor):
            out[name] = value.detach().cpu().float().squeeze(0) if name == "mask" else value.detach().cpu().float()
    return out
