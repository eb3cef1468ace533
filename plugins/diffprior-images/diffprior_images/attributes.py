"""The ``attributes`` term: wanted attributes by name under a multi-label classifier trained by
``diffprior train-classifier attributes`` (the faces recipe of the paper). No torch here.

The classifier is ``NAME.safetensors`` (timm weights) with ``NAME.json`` beside it: its timm
architecture, attribute names, input size and normalisation. The term is the ``classifier``
term's multi-label score (Σ Bernoulli log-likelihoods of the wanted attributes) on that
network, with the faces defaults: weight 1 and the gradient clipped per sample to 0.1 × an
EMA (0.5) of the prior-gradient norm.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import ClassVar, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from diffprior import ConfigError, ExistingPath, TermConfig

from diffprior import hookimpl

from .attribute_training import ATTRIBUTES_FORMAT
from .plugin import AugmentConfig, ClassifierConfig


def read_attribute_classifier(path: Path) -> dict:
    """The JSON beside an attribute classifier's weights; ValueError saying what is wrong."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if path.suffix != ".safetensors":
        raise ValueError(f"{path.name}: give the classifier's NAME.safetensors (written by diffprior train-classifier attributes)")
    if not meta_path.exists():
        raise ValueError(f"{meta_path} is missing: an attribute classifier is NAME.safetensors with NAME.json beside it")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != ATTRIBUTES_FORMAT:
        raise ValueError(f"{meta_path} is not an attribute classifier (format {meta.get('format')!r}); "
                         "train one with: diffprior train-classifier attributes --images DIR --attributes CSV --out DIR")
    return meta


class AttributesConfig(TermConfig):
    """Face attributes by name: ``want = {Smiling = 1, Eyeglasses = 0}`` under a multi-label
    classifier (``checkpoint``) trained by ``diffprior train-classifier attributes``.
    log c = Σ over the wanted attributes of log p(attribute = wanted | x), averaged over
    ``augment`` views (the paper: 8 copies, flip, ±20% brightness, blur σ ≤ 5). Default weight 1,
    gradient clipped to 0.1 × EMA of the prior-gradient norm (the paper's code)."""

    type: Literal["attributes"] = "attributes"
    default_weight: ClassVar = 1.0
    default_clip: ClassVar = {"relative": 0.1, "ema": 0.5}
    checkpoint: ExistingPath = Field(..., description="NAME.safetensors of the classifier (NAME.json beside it)")
    want: dict[str, Union[bool, int]] = Field(..., min_length=1, description="attribute name → 1 (present) or 0 (absent)")
    augment: Optional[AugmentConfig] = Field(None, description="score augmented views (the paper: copies = 8)")

    @field_validator("want")
    @classmethod
    def _binary(cls, value):
        bad = [k for k, v in value.items() if int(v) not in (0, 1)]
        if bad:
            raise ValueError(f"want values must be 1/true (present) or 0/false (absent); check {', '.join(bad)}")
        return {k: int(v) for k, v in value.items()}

    @model_validator(mode="after")
    def _known_attributes(self):
        meta = read_attribute_classifier(self.checkpoint)
        names = meta["attributes"]
        for name in self.want:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                raise ValueError(f"the classifier has no attribute {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                                 + f"; it has: {', '.join(names)}")
        return self

    def classifier_config(self):
        """The equivalent ``classifier`` term config (multi-label, timm + local checkpoint)."""
        meta = read_attribute_classifier(self.checkpoint)
        names = meta["attributes"]
        targets = [0] * len(names)
        for name, value in self.want.items():
            targets[names.index(name)] = value
        try:
            return ClassifierConfig.model_validate({
                "type": "classifier", "timm": meta["timm"], "checkpoint": str(self.checkpoint),
                "num_classes": len(names), "in_chans": int(meta.get("in_chans", 3)), "targets": targets,
                "attributes": [names.index(n) for n in self.want], "input_size": meta["input_size"],
                "mean": meta["mean"], "std": meta["std"],
                "augment": self.augment.model_dump() if self.augment else None,
            })
        except ValueError as exc:
            raise ConfigError(f"terms: attribute classifier {self.checkpoint}: {exc}") from None

    def build(self, ctx):
        from .terms import ClassifierTerm

        return ClassifierTerm(self.classifier_config(), ctx)



@hookimpl
def register_terms(register):
    register(AttributesConfig)
