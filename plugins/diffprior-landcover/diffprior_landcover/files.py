"""Scenes as files a user can look at, and a user's own image + coarse map read back.

Layout written by ``diffprior landcover data --out DIR`` (one scene per index NNNN):

==========================  ==================================================================
``DIR/NNNN-image.png``      the aerial image, RGB
``DIR/NNNN-labels.png``     the true label map: a palette PNG whose pixel values are class indices
``DIR/NNNN-coarse.png``     the coarse map (one pixel per block), same palette
``DIR/scenes.safetensors``  all of it as tensors: ``image`` [N, 3, H, W] uint8, ``labels`` [N, H, W]
                            uint8, ``coarse`` [N, H/b, W/b] uint8, ``seeds`` [N] int64
``DIR/classes.json``        class names, display colours, block size, seeds
``DIR/preview.png``         image | labels | coarse side by side, for the first scenes
==========================  ==================================================================

:func:`read_images` and :func:`read_label_maps` accept PNG (or any Pillow format), ``.npy`` and
``.safetensors`` files; GeoTIFF (``.tif``/``.tiff``) is read through rasterio when installed
(``pip install diffprior-landcover[geotiff]``), else through Pillow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .world import CLASSES, NUM_CLASSES, PALETTE, Scene, colourise

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class SceneFileError(ValueError):
    """A scene file is missing, unreadable or has the wrong shape; the message names the file."""


def _palette_png(labels: np.ndarray, path: Path) -> None:
    from PIL import Image

    img = Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="P")
    flat = PALETTE.flatten().tolist()
    img.putpalette(flat + [0] * (768 - len(flat)))
    img.save(path)


def upsample(coarse: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upsampling of a coarse map [h, w] to [size, size]."""
    block = size // coarse.shape[0]
    return np.kron(np.asarray(coarse), np.ones((block, block), dtype=np.asarray(coarse).dtype))


def preview(scenes: list[Scene], scale: int = 2, gap: int = 2) -> np.ndarray:
    """One row per scene: image | true labels | coarse map (upsampled), as uint8 RGB."""
    rows = []
    for s in scenes:
        size = s.labels.shape[0]
        sep = np.full((size, gap, 3), 255, np.uint8)
        rows.append(np.concatenate([s.image, sep, colourise(s.labels), sep, colourise(upsample(s.coarse, size))], 1))
        rows.append(np.full((gap, rows[-1].shape[1], 3), 255, np.uint8))
    grid = np.concatenate(rows[:-1], 0)
    return np.kron(grid, np.ones((scale, scale, 1), np.uint8))


def write_scenes(out: Path, scenes: list[Scene], pngs: bool = True) -> None:
    """Write ``scenes`` in the layout above (PNG files only when ``pngs``)."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {
        "image": torch.from_numpy(np.stack([s.image for s in scenes]).transpose(0, 3, 1, 2).copy()),
        "labels": torch.from_numpy(np.stack([s.labels for s in scenes]).astype(np.uint8)),
        "coarse": torch.from_numpy(np.stack([s.coarse for s in scenes]).astype(np.uint8)),
        "seeds": torch.tensor([s.seed for s in scenes], dtype=torch.int64),
    }
    save_file(tensors, str(out / "scenes.safetensors"))
    meta = {"classes": list(CLASSES), "palette": PALETTE.tolist(), "block": scenes[0].block,
            "size": int(scenes[0].labels.shape[0]), "seeds": [s.seed for s in scenes]}
    (out / "classes.json").write_text(json.dumps(meta, indent=1) + "\n")
    if pngs:
        for i, s in enumerate(scenes):
            Image.fromarray(s.image).save(out / f"{i:04d}-image.png")
            _palette_png(s.labels, out / f"{i:04d}-labels.png")
            _palette_png(s.coarse, out / f"{i:04d}-coarse.png")
        Image.fromarray(preview(scenes[:8])).save(out / "preview.png")


def write_onehot(out: Path, labels: np.ndarray) -> None:
    """Training data for a label-map prior: ``images`` [N, K, H, W] uint8 in {0, 255} (one-hot),
    which ``diffprior train-prior`` (data source ``tensors``) maps to {−1, +1}."""
    import torch
    from safetensors.torch import save_file

    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    onehot = torch.nn.functional.one_hot(labels, NUM_CLASSES).permute(0, 3, 1, 2).to(torch.uint8) * 255
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file({"images": onehot.contiguous()}, str(out))


# ------------------------------------------------------------------------------ reading
def _read_array(path: Path, key: str | None, names: tuple[str, ...], rgb: bool = False) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise SceneFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".safetensors":
            from safetensors.numpy import load_file

            tensors = load_file(str(path))
            if key is None:
                key = next((n for n in names if n in tensors), None)
                if key is None and len(tensors) == 1:
                    key = next(iter(tensors))
            if key not in tensors:
                raise SceneFileError(f"{path}: no tensor named {key or ' or '.join(names)!r}; the file holds {sorted(tensors)}")
            return tensors[key]
        if suffix in (".tif", ".tiff"):
            try:
                import rasterio
            except ImportError:
                rasterio = None
            if rasterio is not None:
                with rasterio.open(path) as src:
                    data = src.read()
                return data[0] if data.shape[0] == 1 else data.transpose(1, 2, 0)
        if suffix in IMAGE_SUFFIXES:
            from PIL import Image

            with Image.open(path) as img:
                if not rgb and img.mode in ("P", "L", "I", "I;16"):
                    return np.asarray(img)
                return np.asarray(img.convert("RGB"))
    except SceneFileError:
        raise
    except Exception as exc:
        raise SceneFileError(f"{path}: cannot read it ({type(exc).__name__}: {exc})") from None
    raise SceneFileError(f"{path}: unsupported file type {suffix!r}; use .png, .npy, .safetensors or .tif")


def read_images(path: Path, key: str | None = None) -> np.ndarray:
    """RGB image(s) as float [N, 3, H, W] in [0, 1] (N = 1 for a single image), from PNG/TIFF,
    ``.npy`` or ``.safetensors``. Arrays may be [H, W, 3] or [3, H, W] or stacks of either,
    uint8 (0..255), uint16 or float (0..1)."""
    a = _read_array(path, key, ("image", "images"), rgb=True)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise SceneFileError(f"{path}: expected an RGB image [H, W, 3] or [3, H, W] (or a stack), got shape {list(a.shape)}")
    if a.shape[-1] in (3, 4) and a.shape[1] not in (3, 4):
        a = a[..., :3].transpose(0, 3, 1, 2)
    if a.shape[1] < 3:
        raise SceneFileError(f"{path}: expected 3 colour channels, got shape {list(a.shape)}")
    a = a[:, :3]
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    a = a.astype(np.float32)
    if a.min() < -1e-3 or a.max() > 1 + 1e-3:
        raise SceneFileError(f"{path}: float image values span [{a.min():.3g}, {a.max():.3g}]; scale them to [0, 1]")
    return a.clip(0, 1)


def read_label_maps(path: Path, key: str | None = None, classes: int = NUM_CLASSES) -> np.ndarray:
    """Label map(s) from a palette/greyscale PNG, ``.npy`` or ``.safetensors``: integer class
    indices [N, h, w] (a single [h, w] map gives N = 1), or float class probabilities
    [N, K, h, w] (a single [K, h, w] gives N = 1), checked against ``classes``."""
    a = _read_array(path, key, ("coarse", "labels"))
    if np.issubdtype(a.dtype, np.floating) and a.ndim in (3, 4):
        if a.ndim == 3:
            a = a[None]
        if a.shape[1] != classes:
            raise SceneFileError(f"{path}: float label arrays are class probabilities [K={classes}, h, w]; got shape {list(a.shape)}")
        if a.min() < 0:
            raise SceneFileError(f"{path}: class probabilities must be non-negative")
        return (a / np.clip(a.sum(1, keepdims=True), 1e-8, None)).astype(np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise SceneFileError(f"{path}: expected a label map [h, w] of class indices (or a stack), got shape {list(a.shape)}")
    if np.issubdtype(a.dtype, np.floating):
        if not np.allclose(a, np.round(a)):
            raise SceneFileError(f"{path}: a label map must hold integer class indices")
        a = np.round(a)
    a = a.astype(np.int64)
    if a.min() < 0 or a.max() >= classes:
        raise SceneFileError(f"{path}: class indices span {a.min()}..{a.max()}; this model has classes 0..{classes - 1}")
    return a
