"""Networks that classifier and segmentation terms can name, and the bundled digit networks.

A :class:`ModelSpec` describes a network without importing torch: what it predicts, how many
classes, what input it expects (channels, size, normalisation) and how to build it. Any
distribution can contribute one through the entry-point group ``diffprior_images.models``
(the entry point loads a ModelSpec, or a function returning one); this package contributes
``digits``, ``digits-judge`` and ``digits-strokes``, whose weights ship as package data
(``weights/NAME.safetensors`` + ``weights/NAME.json``, written by ``diffprior train-classifier``).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Literal

MODEL_GROUP = "diffprior_images.models"
WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ModelSpec:
    """A network for a term. ``build(device)`` returns the torch module with its weights loaded.

    Inputs: images in the prior's data range are mapped to [0, 1], resized to ``input_size``
    (None: as they are), given ``in_chans`` channels and normalised with ``mean``/``std``.
    """

    name: str
    task: Literal["classify", "segment"]
    num_classes: int
    build: Callable[[str], Any]
    in_chans: int = 1
    input_size: int | None = None
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    description: str = ""
    info: dict = field(default_factory=dict)


def bundled_spec(name: str) -> ModelSpec:
    """The spec of a network shipped in ``weights/`` (its json says the architecture and input)."""
    meta_path = WEIGHTS_DIR / f"{name}.json"
    if not meta_path.exists():
        raise FileNotFoundError(
            f"the bundled model {name!r} has no weights ({meta_path} is missing); "
            f"train it with: diffprior train-classifier {name} --out {WEIGHTS_DIR}"
        )
    meta = json.loads(meta_path.read_text())

    def build(device: str = "cpu"):
        from diffprior import load_tensors

        from .networks import ARCHITECTURES

        module = ARCHITECTURES[meta["arch"]](**meta["arch_kwargs"])
        module.load_state_dict(load_tensors(WEIGHTS_DIR / f"{name}.safetensors", what="bundled network"))
        return module.eval().to(device)

    return ModelSpec(
        name=name,
        task=meta["task"],
        num_classes=int(meta["num_classes"]),
        build=build,
        in_chans=int(meta.get("in_chans", 1)),
        input_size=meta.get("input_size"),
        mean=tuple(meta.get("mean", (0.5,))),
        std=tuple(meta.get("std", (0.5,))),
        description=meta.get("description", ""),
        info=meta,
    )


# entry points of this package (functions: the json is read only when a term names the model)
def DIGITS() -> ModelSpec:
    return bundled_spec("digits")


def DIGITS_JUDGE() -> ModelSpec:
    return bundled_spec("digits-judge")


def DIGITS_STROKES() -> ModelSpec:
    return bundled_spec("digits-strokes")


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=MODEL_GROUP)}


def model_names() -> list[str]:
    return sorted(_entry_points())


def get_model_spec(name: str, task: str | None = None) -> ModelSpec:
    """Load a named network's spec; a ValueError says what is available when ``name`` is unknown."""
    eps = _entry_points()
    if name not in eps:
        close = difflib.get_close_matches(name, list(eps), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; available: {', '.join(sorted(eps)) or 'none'}")
    spec = eps[name].load()
    spec = spec() if callable(spec) and not isinstance(spec, ModelSpec) else spec
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"the entry point {eps[name].value!r} of model {name!r} did not give a ModelSpec")
    if task is not None and spec.task != task:
        kind = {"classify": "a classifier", "segment": "a segmenter"}
        raise ValueError(f"model {name!r} is {kind[spec.task]}, not {kind[task]}; choose a model of the right kind")
    return spec
