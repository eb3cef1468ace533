"""Hook implementations and config models of diffprior-images. No torch at import time:
each config's ``build`` imports the term implementation (and torch) when a run needs it.

Default weights follow the paper's digits recipe: λ decays linearly from 0.01 to 0 over the
run (with Adam, lr 0.01, 1000 steps), and terms see clip(η, −1, 1) (the ``pixels``
variable's term view). No term clips its gradient by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from diffprior import ExistingPath, TermConfig, resolve_path
from diffprior import Command, Dataset
from diffprior import hookimpl

from .digits import DigitRef

PAPER_DIGITS_WEIGHT = {"linear": [0.01, 0.0]}


# --------------------------------------------------------------------------- shared pieces
def _file_or_digit(value: Any, info: ValidationInfo) -> Any:
    """A safetensors path (resolved next to the config) or a DigitRef table."""
    if isinstance(value, (str, Path)):
        return resolve_path(value, info)
    return value


def _model_spec(name: str, task: str):
    from .bundled import get_model_spec

    try:
        return get_model_spec(name, task)
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from None


class AugmentConfig(BaseModel):
    """The paper's faces recipe: the classifier scores ``copies`` augmented views, averaged.

    Each view: a random horizontal flip, brightness ×U[1 − brightness, 1 + brightness], a
    Gaussian blur with σ ~ U[0, blur], a shift by up to ``shift`` pixels each way and Gaussian
    noise of std ``noise`` (on the [0, 1] image). Views are drawn from the term's own seeded
    generator and shared by the batch, so sample i's score depends on x[i] alone.
    """

    model_config = ConfigDict(extra="forbid")
    copies: int = Field(8, gt=0)
    flip: bool = True
    brightness: float = Field(0.2, ge=0.0, lt=1.0)
    blur: float = Field(5.0, ge=0.0, description="largest blur σ in pixels of the model's input")
    shift: int = Field(0, ge=0, description="largest shift in pixels (each direction)")
    noise: float = Field(0.0, ge=0.0, description="std of Gaussian noise added to the [0, 1] image")
    seed: int = Field(0, ge=0)


class DenoisedConfig(BaseModel):
    """Score the prior's denoised estimate x̂₀ instead of x (as DPS and universal guidance do).

    Each call draws t ~ U[t[0], t[1]] and ε ~ N(0, I) (``copies`` times, shared by the
    batch), noises x to x_t = √ᾱ_t·x + √(1−ᾱ_t)·ε and denoises it in one step with the
    prior: x̂₀ = (x_t − √(1−ᾱ_t)·ε_θ(x_t, t)) / √ᾱ_t, clipped to the data range. The
    classifier scores x̂₀. Pixel patterns the prior does not believe in are removed before
    the classifier sees them, so they earn no score. ``jacobian = true`` back-propagates
    through ε_θ (one U-Net backward pass per copy and step: the gradient is projected on
    what the prior can produce); ``false`` passes the classifier's gradient at x̂₀ straight
    to x (no backward pass through the U-Net).
    """

    model_config = ConfigDict(extra="forbid")
    t: tuple[int, int] = Field((50, 300), description="range of the timestep drawn per call (inclusive)")
    copies: int = Field(1, gt=0, description="x̂₀ estimates per call, averaged")
    jacobian: bool = Field(True, description="back-propagate through the prior's ε_θ")
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _ordered(self):
        if not 0 <= self.t[0] <= self.t[1]:
            raise ValueError(f"t = {list(self.t)} must be [low, high] with 0 ≤ low ≤ high")
        return self


# --------------------------------------------------------------------------- terms
class SymmetryConfig(TermConfig):
    """Mirror symmetry: log c = −MSE(x, flip(x)).

    ``axis = "vertical"`` mirrors across the vertical axis (left ↔ right), ``"horizontal"``
    across the horizontal one (top ↔ bottom). Default weight: linear 0.01 → 0 (paper); no clip.
    """

    type: Literal["symmetry"] = "symmetry"
    default_weight: ClassVar = PAPER_DIGITS_WEIGHT
    default_clip: ClassVar = "none"
    axis: Literal["vertical", "horizontal"] = "vertical"

    def build(self, ctx):
        from .terms import SymmetryTerm

        return SymmetryTerm(self, ctx)


class IntensityConfig(TermConfig):
    """Stroke thickness through the mean intensity m of the image mapped to [0, 1] (ink).

    Without ``level`` (the paper): log c = −m for ``thin``, +m for ``thick``. With ``level``
    in [0, 1]: log c = −max(m − level, 0)² for thin (ink at most ``level``), −max(level − m, 0)²
    for thick (at least). Default weight: linear 0.01 → 0 (paper); no clip.
    """

    type: Literal["intensity"] = "intensity"
    default_weight: ClassVar = PAPER_DIGITS_WEIGHT
    default_clip: ClassVar = "none"
    mode: Literal["thin", "thick"] = "thin"
    level: Optional[float] = Field(None, ge=0.0, le=1.0, description="target mean ink in [0, 1]")

    def build(self, ctx):
        from .terms import IntensityTerm

        return IntensityTerm(self, ctx)


class ClassifierConfig(TermConfig):
    """A classifier's log-probability of what we want.

    The network is either a named model contributed by a plugin (``model = "digits"``: the
    bundled digit classifier) or a timm architecture with a local checkpoint
    (``timm = "resnet18"``, ``checkpoint = "weights.safetensors"``, ``num_classes = 40``):
    never downloaded. Single-label: ``target`` = class index, log c = log p(target | x).
    Multi-label (sigmoid outputs): ``targets`` = 0/1 per attribute and ``attributes`` = the
    indices that matter (default all); log c = Σ over them of the Bernoulli log-likelihood.
    Inputs are mapped to [0, 1], resized to ``input_size`` and normalised with ``mean``/``std``
    (defaults: the named model's own; ImageNet's and 224 for timm). ``augment`` averages the
    score over augmented views; ``denoised`` scores the prior's one-step denoised estimate
    x̂₀(x_t) instead of x, so pixel patterns the prior removes earn no score. Default weight: linear 0.01 → 0 (paper digits); no clip
    (the faces recipe uses ``clip = {relative = 0.1}``).
    """

    type: Literal["classifier"] = "classifier"
    default_weight: ClassVar = PAPER_DIGITS_WEIGHT
    default_clip: ClassVar = "none"
    model: Optional[str] = Field(None, description="a named network, e.g. 'digits'")
    timm: Optional[str] = Field(None, description="a timm architecture name (with checkpoint and num_classes)")
    checkpoint: Optional[ExistingPath] = Field(None, description="local weights for the timm model (.safetensors, .pt, .pth)")
    num_classes: Optional[int] = Field(None, gt=0, description="outputs of the timm model")
    in_chans: Optional[int] = Field(None, gt=0, description="input channels of the timm model (default 3)")
    target: Optional[int] = Field(None, ge=0, description="single-label: the class to reach")
    targets: Optional[list[int]] = Field(None, description="multi-label: 0/1 per attribute")
    attributes: Optional[list[int]] = Field(None, description="multi-label: which attributes matter (default all)")
    input_size: Optional[int] = Field(None, gt=0)
    mean: Optional[list[float]] = None
    std: Optional[list[float]] = None
    augment: Optional[AugmentConfig] = None
    denoised: Optional[DenoisedConfig] = None

    @model_validator(mode="after")
    def _consistent(self):
        if (self.model is None) == (self.timm is None):
            raise ValueError("give exactly one of model = 'NAME' (e.g. 'digits') or timm = 'ARCH' (with checkpoint and num_classes)")
        if self.timm is not None:
            if self.checkpoint is None or self.num_classes is None:
                raise ValueError(f"timm = {self.timm!r} needs checkpoint = 'FILE' and num_classes = N (weights are never downloaded)")
            num_classes = self.num_classes
        else:
            if self.num_classes is not None or self.checkpoint is not None or self.in_chans is not None:
                raise ValueError("num_classes, in_chans and checkpoint are for timm models; a named model brings its own")
            num_classes = _model_spec(self.model, "classify").num_classes
        if (self.target is None) == (self.targets is None):
            raise ValueError("give exactly one of target = CLASS (single-label) or targets = [0/1 per attribute] (multi-label)")
        if self.target is not None and self.target >= num_classes:
            raise ValueError(f"target {self.target} is out of range: the classifier has {num_classes} classes (0..{num_classes - 1})")
        if self.targets is not None:
            if len(self.targets) != num_classes:
                raise ValueError(f"targets has {len(self.targets)} entries; the classifier has {num_classes} outputs")
            if any(v not in (0, 1) for v in self.targets):
                raise ValueError("targets must be 0 or 1 per attribute")
        if self.attributes is not None:
            if self.targets is None:
                raise ValueError("attributes selects multi-label outputs: use it with targets = [...]")
            bad = [a for a in self.attributes if not 0 <= a < num_classes]
            if bad:
                raise ValueError(f"attributes {bad} are out of range 0..{num_classes - 1}")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if values is not None and (not values or (key == "std" and min(values) <= 0)):
                raise ValueError(f"{key} needs one value per channel" + (" (all positive)" if key == "std" else ""))
        if self.timm is not None:
            import timm  # only when a timm classifier is configured

            if not timm.is_model(self.timm):
                close = timm.list_models(f"*{self.timm.split('_')[0]}*")[:5]
                raise ValueError(f"unknown timm architecture {self.timm!r}" + (f"; similar: {', '.join(close)}" if close else ""))
        return self

    def build(self, ctx):
        from .terms import ClassifierTerm

        return ClassifierTerm(self, ctx)


REGIONS = ("top-half", "bottom-half", "left-half", "right-half", "center", "border")


class MaskConfig(TermConfig):
    """Inpainting: the pixels under a mask are observed with Gaussian noise ``noise``.

    The core's masked Gaussian (the ``match`` term's physics and scaling): log c = −Σ over
    known pixels of (x − y)² / (2·noise²). ``image`` (y) is a real digit
    (``{split = "heldout", index = 0}``) or a safetensors file with an ``image`` tensor; the
    mask is a named ``region`` (the part that is KNOWN) or a safetensors file with ``mask``.
    Default weight: linear 0.01/512 → 0 (the paper's 0.01 on the mean over the 512 known
    pixels of a half 32×32 digit); no clip.
    """

    type: Literal["mask"] = "mask"
    default_weight: ClassVar = {"linear": [0.01 / 512, 0.0]}
    default_clip: ClassVar = "none"
    image: Union[DigitRef, Path]
    region: Union[Literal[REGIONS], Path] = "top-half"  # type: ignore[valid-type]
    noise: float = Field(0.1, gt=0)

    @field_validator("image", mode="before")
    @classmethod
    def _image_file(cls, value, info: ValidationInfo):
        return _file_or_digit(value, info)

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, value, info: ValidationInfo):
        if isinstance(value, str) and value in REGIONS:
            return value
        if isinstance(value, str) and not value.endswith(".safetensors"):
            import difflib

            close = difflib.get_close_matches(value, REGIONS, n=1)
            raise ValueError(f"unknown region {value!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                             + f"; use one of {', '.join(REGIONS)} or a .safetensors file with a 'mask' tensor")
        return resolve_path(value, info)

    def build(self, ctx):
        from .terms import MaskTerm

        return MaskTerm(self, ctx)


class SegmentationConfig(TermConfig):
    """A segmentation network's per-pixel log-likelihood of a target label map y.

    log c = mean over pixels (except ``ignore_index``) of log p(y_ij | x). ``labels`` is a
    real digit (``{split = "heldout", index = 0}``: its stroke pixels labelled 1 + digit,
    the rest 0, the bundled ``digits-strokes`` convention) or a safetensors file with an
    integer ``labels`` tensor [H, W]. Default weight: linear 0.01 → 0; no clip.
    """

    type: Literal["segmentation"] = "segmentation"
    default_weight: ClassVar = PAPER_DIGITS_WEIGHT
    default_clip: ClassVar = "none"
    model: str = "digits-strokes"
    labels: Union[DigitRef, Path]
    ignore_index: int = -1

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_file(cls, value, info: ValidationInfo):
        return _file_or_digit(value, info)

    @model_validator(mode="after")
    def _model_fits(self):
        spec = _model_spec(self.model, "segment")
        if isinstance(self.labels, DigitRef) and spec.num_classes < 11:
            raise ValueError(f"labels from a digit need 11 classes (background + 10 digits); model {self.model!r} has {spec.num_classes}: give a labels file")
        return self

    def build(self, ctx):
        from .terms import SegmentationTerm

        return SegmentationTerm(self, ctx)


TERM_CONFIGS = (SymmetryConfig, IntensityConfig, ClassifierConfig, MaskConfig, SegmentationConfig)


@hookimpl
def register_terms(register):
    for cls in TERM_CONFIGS:  # the attributes term registers from diffprior_images.attributes
        register(cls)


def _digit_images(split: str):
    from .digits import mnist_digits

    return mnist_digits(split, size=28)  # native size; a consumer fits them to its own


@hookimpl
def register_datasets(register):
    from .digits import SPLITS

    register(Dataset("digits", "5000 real MNIST digits, 28×28, offline (splits prior, judge, heldout: "
                               "300/150/50 per class; all)", _digit_images, splits=(*SPLITS, "all")))


def _configure_train(parser):
    from .training import configure

    configure(parser)


def _run_train(args) -> int:
    from .training import run

    return run(args)


@hookimpl
def register_commands(register):
    register(Command(
        "train-classifier",
        "train the bundled digit networks (guidance classifier, judge, stroke segmenter)",
        _configure_train,
        _run_train,
    ))
