"""Training data for U-Net priors: every source becomes a float tensor [N, C, S, S] in [-1, 1].

Sources: ``dataset`` (a dataset another plugin registers, by name: ``load_dataset``; ``bundled-digits`` is the dataset ``digits`` of diffprior-images), ``mnist-idx`` (IDX image
files, optionally gzipped), ``image-folder`` (PNG/JPEG/... files) and ``tensors`` (.npy,
.pt or .safetensors). Problems are reported as :class:`diffprior.ConfigError` naming the file.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from diffprior import ConfigError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def load_training_data(data, size: int, channels: int) -> torch.Tensor:
    """The images of a :class:`DataConfig`, fitted to [N, channels, size, size] in [-1, 1]."""
    if data.source in ("dataset", "bundled-digits"):
        from diffprior import load_dataset

        images, _ = load_dataset(data.dataset, data.split)  # native size; fitted below like any source
    elif data.source == "mnist-idx":
        images = _to_unit_range(_read_idx(data.path), data.value_range, data.path)
    elif data.source == "image-folder":
        images = _to_unit_range(_read_folder(data.path, channels), data.value_range, data.path)
    else:
        images = _to_unit_range(_read_tensors(data.path, data.key), data.value_range, data.path)
    source = data.path or data.source
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ConfigError(f"expected images [N, C, H, W] or [N, H, W], got shape {list(images.shape)}", source=str(source))
    if images.shape[0] == 0:
        raise ConfigError("the data holds no images", source=str(source))
    if images.shape[1] != channels:
        raise ConfigError(
            f"images have {images.shape[1]} channel(s) but the model takes in_channels = {channels}; "
            "change model.in_channels or the data",
            source=str(source),
        )
    return _fit(images, size, data.fit, data.pad_value, source)


def _to_unit_range(x: torch.Tensor, value_range, source) -> torch.Tensor:
    """Map raw values to [-1, 1]: uint8 from [0, 255]; floats must already lie in [-1, 1] unless
    ``value_range = [lo, hi]`` says what they span."""
    if value_range is None:
        if x.dtype == torch.uint8:
            value_range = (0.0, 255.0)
        else:
            x = x.float()
            lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
            if lo < -1.0001 or hi > 1.0001:
                raise ConfigError(
                    f"float data spans [{lo:.3g}, {hi:.3g}], outside [-1, 1]; set data.value_range = [LO, HI] "
                    "to say what range to map onto [-1, 1]",
                    source=str(source),
                )
            return x.clamp(-1, 1)
    lo, hi = value_range
    return ((x.float() - lo) / (hi - lo) * 2 - 1).clamp(-1, 1)


def _fit(images: torch.Tensor, size: int, fit: str, pad_value: float, source) -> torch.Tensor:
    H, W = images.shape[-2:]
    if (H, W) == (size, size):
        return images.contiguous()
    if fit == "pad":
        if H > size or W > size:
            raise ConfigError(
                f"images are {H}×{W}, larger than the model's {size}×{size}: set data.fit = 'resize' or 'center-crop'",
                source=str(source),
            )
        top, left = (size - H) // 2, (size - W) // 2
        return F.pad(images, (left, size - W - left, top, size - H - top), value=pad_value).contiguous()
    if fit == "center-crop":
        side = min(H, W)
        top, left = (H - side) // 2, (W - side) // 2
        images = images[..., top:top + side, left:left + side]
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)


def _read_idx(path: Path) -> torch.Tensor:
    """An IDX file of unsigned bytes (MNIST's ``*-images-idx3-ubyte``), optionally gzipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read IDX file: {exc}", source=str(path)) from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ConfigError("not an IDX file of unsigned bytes (bad magic number)", source=str(path))
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ConfigError(f"truncated IDX file: the header promises {ndim} dimensions", source=str(path))
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if ndim != 3 or len(body) != int(np.prod(dims)):
        raise ConfigError(f"expected a 3-D IDX image file [N, H, W] of {np.prod(dims)} bytes; header says {list(dims)}, "
                          f"body has {len(body)} bytes", source=str(path))
    return torch.from_numpy(np.frombuffer(body, dtype=np.uint8).reshape(dims).copy())


def _read_folder(path: Path, channels: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder", source=str(path))
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise ConfigError(f"image folders give 1 or 3 channels, the model takes {channels}", source=str(path))
    arrays = []
    for file in files:
        try:
            with Image.open(file) as img:
                arrays.append(np.asarray(img.convert(mode)))
        except (UnidentifiedImageError, OSError) as exc:
            raise ConfigError(f"unreadable image: {exc}", source=str(file)) from None
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = files[0]
        odd = next(f for f, a in zip(files, arrays) if a.shape != arrays[0].shape)
        raise ConfigError(f"images differ in size: {first.name} is {arrays[0].shape[:2]}, {odd.name} is "
                          f"{np.asarray(Image.open(odd)).shape[:2]}; resize them to one size first", source=str(path))
    stack = np.stack(arrays)
    stack = stack[:, None] if stack.ndim == 3 else stack.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(stack))


def _read_tensors(path: Path, key: str | None) -> torch.Tensor:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return torch.from_numpy(np.load(path, allow_pickle=False))
        if suffix == ".npz":
            archive = np.load(path, allow_pickle=False)
            return torch.from_numpy(archive[_pick_key(list(archive.keys()), key, path)])
        if suffix == ".pt":
            from diffprior import load_torch_weights

            obj = load_torch_weights(path, what="data file")
            if isinstance(obj, dict):
                obj = obj[_pick_key(list(obj), key, path)]
            if not isinstance(obj, torch.Tensor):
                raise ConfigError(f"expected a tensor (or a dict of tensors), found {type(obj).__name__}", source=str(path))
            return obj
        if suffix == ".safetensors":
            from diffprior import load_tensors

            tensors = load_tensors(path, what="data file")
            return tensors[_pick_key(list(tensors), key, path)]
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"cannot read tensors: {type(exc).__name__}: {exc}", source=str(path)) from None
    raise ConfigError(f"unsupported tensor file type {suffix!r}: use .npy, .npz, .pt or .safetensors", source=str(path))


def _pick_key(keys: list[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in keys:
            raise ConfigError(f"no tensor named {key!r}; the file holds {keys}", source=str(path))
        return key
    if len(keys) == 1:
        return keys[0]
    for default in ("images", "x"):
        if default in keys:
            return default
    raise ConfigError(f"the file holds several tensors {keys}: set data.key to the images", source=str(path))
