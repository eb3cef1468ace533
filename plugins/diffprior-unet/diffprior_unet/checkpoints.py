"""U-Net checkpoints: ``NAME.safetensors`` (weights) beside ``NAME.json`` (everything else).

The JSON holds the architecture, noise schedule, T, sample shape, data range and training
info, so a checkpoint is self-describing. Weights may be stored in float16 (half the size);
they are always loaded as float32. Bundled checkpoints live in ``diffprior_unet/weights``
and are addressed by name (``"digits"``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMAT = "diffprior-unet/1"
WEIGHTS_DIR = Path(__file__).parent / "weights"


# Other distributions bundle U-Net checkpoints too (diffprior-tsp's ``tsp50``, diffprior-landcover's
# ``landcover``): each names a package folder of NAME.safetensors + NAME.json in this entry-point
# group, so any config can say ``checkpoint = "tsp50"`` wherever the files are installed.
CHECKPOINT_FOLDERS_GROUP = "diffprior_unet.checkpoint_folders"


def _checkpoint_folders() -> list[Path]:
    """This package's weights folder first, then the folders other distributions declare."""
    import importlib.util
    from importlib.metadata import entry_points

    folders = [WEIGHTS_DIR]
    for entry in sorted(entry_points(group=CHECKPOINT_FOLDERS_GROUP), key=lambda e: (e.dist.name if e.dist else "", e.name)):
        try:
            spec = importlib.util.find_spec(entry.value)
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec else []
        folders += [Path(location) for location in locations]
    return folders


def _bundled() -> dict[str, Path]:
    """name → .safetensors path of every bundled checkpoint (the first folder that has a name wins)."""
    found: dict[str, Path] = {}
    for folder in _checkpoint_folders():
        for path in sorted(folder.glob("*.safetensors")):
            if path.with_suffix(".json").exists():
                found.setdefault(path.stem, path)
    return found


def bundled_names() -> list[str]:
    """Names of the bundled checkpoints: this package's and those other distributions declare."""
    return sorted(_bundled())


def resolve_checkpoint(value: str | Path, base_dir: Path | str | None = None) -> Path:
    """A bundled name or a path (``.safetensors``, ``.json`` or the stem) → the ``.safetensors`` path.

    Relative paths are taken relative to ``base_dir`` (a config file's folder) when given.
    Raises FileNotFoundError with the bundled names when nothing matches.
    """
    text = str(value)
    bundled = _bundled()
    if text in bundled and not Path(text).suffix:
        return bundled[text]
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    elif path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    if not path.exists() or not path.with_suffix(".json").exists():
        missing = path if not path.exists() else path.with_suffix(".json")
        names = ", ".join(sorted(bundled)) or "(none installed)"
        raise FileNotFoundError(
            f"U-Net checkpoint {text!r} not found ({missing} does not exist); give a bundled name "
            f"({names}) or the path of a NAME.safetensors file with its NAME.json beside it"
        )
    return path


def save_checkpoint(model, path: str | Path, *, noise, data_range=(-1.0, 1.0), training: dict | None = None,
                    dtype: str = "float16") -> Path:
    """Write ``model`` (a :class:`UNet`) as ``path`` (.safetensors) + its .json; returns the weights path."""
    from diffprior import save_weights

    if dtype not in ("float16", "float32"):
        raise ValueError(f"checkpoint dtype must be 'float16' or 'float32', got {dtype!r}")
    arch = model.arch
    meta = {
        "format": FORMAT,
        "architecture": arch.model_dump(),
        "noise_schedule": noise.to_config(),
        "shape": [arch.in_channels, arch.image_size, arch.image_size],
        "data_range": [float(data_range[0]), float(data_range[1])],
        "dtype": dtype,
        "parameters": sum(p.numel() for p in model.parameters()),
        "training": training or {},
    }
    return save_weights(path, model.state_dict(), meta, dtype=dtype, file_format=FORMAT)


def read_metadata(path: str | Path) -> dict[str, Any]:
    path = resolve_checkpoint(path)
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.with_suffix('.json')} is not valid JSON: {exc}") from None
    for key in ("architecture", "noise_schedule", "shape", "data_range"):
        if key not in meta:
            raise ValueError(f"{path.with_suffix('.json')} lacks the key {key!r}; is it a diffprior-unet checkpoint?")
    return meta


# keys of a checkpoint's .json that diffprior-unet itself writes; other plugins use sections
RESERVED_KEYS = frozenset({"format", "architecture", "noise_schedule", "shape", "data_range", "dtype", "parameters",
                           "training"})


def plugin_metadata(checkpoint: str | Path, section: str) -> dict[str, Any] | None:
    """What another plugin recorded about a checkpoint under ``section`` (None if nothing)."""
    value = read_metadata(checkpoint).get(section)
    return dict(value) if isinstance(value, dict) else None


def set_plugin_metadata(checkpoint: str | Path, section: str, value: dict[str, Any]) -> Path:
    """Record ``value`` (JSON-serialisable) under ``section`` of a checkpoint's metadata.

    This is how another plugin marks a checkpoint (diffprior-tsp records the instance size
    of a tour-image prior under ``"tsp"``); the keys diffprior-unet owns cannot be set."""
    if section in RESERVED_KEYS:
        raise ValueError(f"{section!r} belongs to diffprior-unet's checkpoint format; use a section of your own")
    path = resolve_checkpoint(checkpoint)
    meta = read_metadata(path)
    meta[section] = json.loads(json.dumps(value))  # a copy, and fails early on values JSON cannot hold
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def copy_checkpoint(checkpoint: str | Path, target: str | Path) -> Path:
    """Copy a checkpoint (weights and metadata) to ``target`` (.safetensors); returns it."""
    import shutil

    source = resolve_checkpoint(checkpoint)
    target = Path(target)
    if target.suffix != ".safetensors":
        target = target.with_name(target.name + ".safetensors")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    shutil.copyfile(source.with_suffix(".json"), target.with_suffix(".json"))
    return target


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """(UNet in eval mode, float32, on ``device``; metadata dict) from a bundled name or a path."""
    from diffprior import load_tensors

    from .config import UNetArchitecture
    from .model import UNet

    path = resolve_checkpoint(path)
    meta = read_metadata(path)
    model = UNet(UNetArchitecture.model_validate(meta["architecture"]))
    tensors = {k: v.float() for k, v in load_tensors(path, what="prior checkpoint").items()}
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise ValueError(f"{path} does not match the architecture in its .json: {detail}") from None
    return model.to(device).eval().requires_grad_(False), meta


def load_prior(checkpoint: str | Path, device: str = "cpu", precision: str = "fp32"):
    """A :class:`UNetPrior` from a bundled name or a checkpoint path (``precision``: fp32 or bf16
    autocast inference)."""
    from diffprior import NoiseSchedule

    from .prior import UNetPrior

    model, meta = load_checkpoint(checkpoint, device)
    noise = NoiseSchedule.named(meta["noise_schedule"]["name"], int(meta["noise_schedule"]["T"]))
    return UNetPrior(model, noise, data_range=tuple(meta["data_range"]), metadata=meta,
                     precision=precision).to(device)
