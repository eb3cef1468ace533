"""Measurements from clean images: y = N(A(u)) for each image u of a folder (deepinv scale)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from diffprior import ConfigError

IMAGE_SUFFIXES = (".png", ".npy")


def read_image(path: Path) -> torch.Tensor:
    """One image as a [C, H, W] float tensor in [0, 1]: a PNG (8-bit, grey or RGB) or a .npy
    array of shape [H, W] or [C, H, W] already in [0, 1]."""
    import numpy as np

    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False).astype(np.float32)
        else:
            from PIL import Image

            with Image.open(path) as image:
                image = image.convert("L") if image.mode in ("L", "P", "1", "I;16", "I") else image.convert("RGB")
                array = np.asarray(image, dtype=np.float32) / 255.0
                if array.ndim == 3:
                    array = array.transpose(2, 0, 1)
    except Exception as exc:  # OSError, ValueError, PIL.UnidentifiedImageError
        raise ConfigError(f"image {path} cannot be read ({' '.join(str(exc).split())[:120]})") from None
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 3:
        raise ConfigError(f"image {path} has shape {list(tensor.shape)}; expected [H, W] or [C, H, W]")
    return tensor


def read_folder(folder) -> tuple[list[Path], torch.Tensor]:
    """The images of ``folder`` in name order, stacked [N, C, H, W]; one-line errors naming the first bad file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"images folder {folder} not found")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise ConfigError(f"images folder {folder} holds no .png or .npy files")
    images = []
    for path in paths:
        image = read_image(path)
        if images and image.shape != images[0].shape:
            raise ConfigError(f"image {path} has shape {list(image.shape)}; {paths[0].name} has {list(images[0].shape)} "
                              "(all images must have one shape)")
        images.append(image)
    return paths, torch.stack(images)


def simulate(images, out, spec) -> Path:
    """Write ``out/measurements.safetensors`` (``measurement`` [N, ...] and the operator's
    parameters, e.g. ``mask``), ``out/clean.safetensors`` (``clean`` [N, C, H, W] in [0, 1]),
    ``out/clean/`` (copies of the images, row i = i-th name in ``out/names.txt``) and
    ``out/operator.json`` (the spec). Everything is checked before anything is written."""
    from safetensors.torch import save_file

    from .physics import build_physics, operator_tensors

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"output folder {out} is not empty")
    paths, clean = read_folder(images)
    physics = build_physics(spec, tuple(clean.shape[1:]))
    with torch.no_grad():
        measurement = physics(clean)  # A then the noise model, its generator seeded with spec.seed + 1
    out.mkdir(parents=True, exist_ok=True)
    (out / "clean").mkdir()
    for path in paths:
        shutil.copy2(path, out / "clean" / path.name)
    tensors = {"measurement": measurement.contiguous(), **{k: v.contiguous() for k, v in operator_tensors(physics).items()}}
    save_file(tensors, str(out / "measurements.safetensors"), metadata={"operator": spec.model_dump_json()})
    save_file({"clean": clean.contiguous()}, str(out / "clean.safetensors"))
    (out / "names.txt").write_text("".join(p.name + "\n" for p in paths))
    (out / "operator.json").write_text(json.dumps(spec.model_dump(mode="json"), indent=2) + "\n")
    print(f"wrote {len(paths)} measurements of shape {list(measurement.shape[1:])} to {out / 'measurements.safetensors'}")
    return out
