"""Reading tensors from files a user hands us: safetensors only, or a ``.pt`` read with
``weights_only=True``; never pickle. A file that is missing, truncated, corrupted or of
another format is a :class:`~diffprior.config.ConfigError` (exit 2) of one line naming it.
"""

from __future__ import annotations

from pathlib import Path

from diffprior.errors import ConfigError


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def load_tensors(path, *, what: str = "tensor file") -> dict:
    """All tensors of a safetensors file, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} not found")
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError (truncated, corrupted, not safetensors), OSError
        raise ConfigError(f"{what} {path} is not a readable safetensors file ({_detail(exc)}); "
                          "write it with safetensors.torch.save_file") from None


def load_torch_weights(path, *, what: str = "weights file"):
    """A ``.pt``/``.pth`` file read with ``weights_only=True``: tensors and plain containers only."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} not found")
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but weights, RuntimeError when truncated
        raise ConfigError(f"{what} {path} cannot be read as plain weights ({_detail(exc)}); "
                          "diffprior never unpickles objects: save tensors with safetensors") from None


def save_weights(path, state_dict: dict, metadata: dict, *, dtype: str = "float32", file_format: str = "") -> Path:
    """A model's weights as ``PATH.safetensors`` (cast to ``dtype``, e.g. "float16") and ``metadata``
    as ``PATH.json`` beside them; returns the weights path.

    Weights first, the JSON last, each written to a temporary file and renamed: a JSON beside
    the weights means the pair is complete, and a crash never leaves a half-written file under
    either name. Both get the usual permissions (safetensors alone writes 0600 files)."""
    import json
    import os

    import torch
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    store = getattr(torch, dtype)
    tensors = {k: v.detach().to("cpu", store).contiguous() for k, v in state_dict.items()}
    umask = os.umask(0o022)
    os.umask(umask)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": file_format} if file_format else None)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
    meta_tmp = path.with_suffix(".json.tmp")
    meta_tmp.write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    os.replace(meta_tmp, path.with_suffix(".json"))
    return path
