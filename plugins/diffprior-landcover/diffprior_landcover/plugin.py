"""diffprior hooks of the land-cover plugin: the ``nmi`` and ``lowres-kl`` terms, the
``landcover-labels`` variable and the ``landcover`` command.

No torch here: configs are plain pydantic and everything heavy is imported in ``build``/``run``.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Optional, Union

from pydantic import Field, model_validator

from diffprior import ExistingPath, TermConfig, VariableConfig
from diffprior import hookimpl

from .commands import LANDCOVER_COMMAND

_SCENE_HELP = ("a file holding one scene, or a stack of scenes (scenes.safetensors from `diffprior landcover data`): "
               "then sample i of a run uses scene start + i, or every sample uses scene `index`")


class _SceneFile(TermConfig):
    key: Optional[str] = Field(None, description="tensor name inside a .safetensors file (default: the usual names)")
    index: Optional[int] = Field(None, ge=0, description="in a stack: the scene every sample uses")
    start: int = Field(0, ge=0, description="in a stack: the scene of sample 0 (sample i uses start + i)")

    @model_validator(mode="after")
    def _index_or_start(self):
        if self.index is not None and self.start:
            raise ValueError("give either index (one scene for all samples) or start (sample i uses scene start + i), not both")
        return self


class NmiConfig(_SceneFile):
    """Normalised mutual information between the label map and k local colour clusters of an image.

    The clusters are fit by EM (a diagonal Gaussian mixture) in sliding windows, once, when the
    run starts; the score is the mean NMI over windows. It does not care which colour means which
    class, so it works on imagery whose colours it has never seen (the paper's segmentation term).
    """

    type: Literal["nmi"] = "nmi"
    default_weight: ClassVar = 1.0
    default_clip: ClassVar = "none"

    image: ExistingPath = Field(..., description="RGB image: .png/.tif, .npy or .safetensors; " + _SCENE_HELP)
    clusters: int = Field(5, ge=2, description="k: colour clusters per window")
    window: int = Field(31, ge=4, description="window side in pixels")
    stride: int = Field(11, ge=1, description="window step in pixels (the last window is flush with the border)")
    em_iterations: int = Field(20, ge=1, description="EM iterations per window")

    def build(self, ctx):
        from .scenes import load_term_images
        from .terms import LocalNMI

        return LocalNMI(self, ctx, load_term_images(self))


class LowresKlConfig(_SceneFile):
    """KL divergence between the label probabilities average-pooled onto the coarse grid and a
    per-block class distribution made from a coarse (low-resolution) label map.

    ``coarse`` holds class indices [h, w] (a palette/greyscale PNG, .npy or .safetensors) or
    class probabilities [K, h, w]. Indices become distributions through ``table`` (row a: the
    classes expected inside a block labelled a; ``"synthetic-world"`` uses the table measured on
    training scenes of the bundled world) or else ``confidence`` on the labelled class.
    """

    type: Literal["lowres-kl"] = "lowres-kl"
    default_weight: ClassVar = 1.0
    default_clip: ClassVar = "none"

    coarse: ExistingPath = Field(..., description="coarse label map: " + _SCENE_HELP)
    table: Union[Literal["synthetic-world"], list[list[float]], None] = Field(
        None, description="K×K class table for coarse indices, or 'synthetic-world'")
    confidence: float = Field(0.8, gt=0, lt=1, description="probability of the labelled class when no table is given")
    pool: Optional[int] = Field(None, ge=1, description="pooling window in pixels (default: the block size)")
    pool_stride: Optional[int] = Field(None, ge=1, description="pooling step (default: the window)")
    direction: Literal["prior-to-labels", "labels-to-prior"] = Field(
        "prior-to-labels", description="KL(coarse prior ‖ pooled labels) or the reverse")
    floor: float = Field(1e-3, gt=0, lt=1, description="smallest class probability in the coarse prior")

    def build(self, ctx):
        from .scenes import load_term_coarse
        from .terms import LowresKL

        return LowresKL(self, ctx, load_term_coarse(self, ctx))


class LandcoverLabelsConfig(VariableConfig):
    """Label maps on the simplex, as ``simplex-labels`` (P(0.5 < N(m, σ) < 1.5) normalised over
    classes, σ annealed), optionally started from a coarse map: m = 0.5 + ``init_strength``·onehot
    (upsampled coarse) + noise, instead of a uniform start."""

    type: Literal["landcover-labels"] = "landcover-labels"
    sigma_start: float = Field(0.2, gt=0)
    sigma_end: float = Field(0.02, gt=0)
    anneal: Literal["geometric", "linear"] = Field("geometric", description="how σ goes from start to end")
    coarse: Optional[ExistingPath] = Field(None, description="coarse map to start from (as in lowres-kl)")
    key: Optional[str] = None
    index: Optional[int] = Field(None, ge=0)
    start: int = Field(0, ge=0)
    init_strength: float = Field(0.3, ge=0, description="how far the start leans towards the coarse class")
    init_noise: float = Field(0.1, ge=0, description="std of the per-sample noise on m at the start")

    def build(self, ctx):
        from .variable import LandcoverLabels

        coarse = None
        if self.coarse is not None:
            from .scenes import load_coarse_indices

            coarse = load_coarse_indices(self.coarse, self.key, self.index, self.start, ctx.prior.shape[0])
        return LandcoverLabels(ctx.prior, self.sigma_start, self.sigma_end, self.anneal, coarse,
                               self.init_strength, self.init_noise)


@hookimpl
def register_terms(register):
    register(NmiConfig)
    register(LowresKlConfig)


@hookimpl
def register_variables(register):
    register(LandcoverLabelsConfig)


@hookimpl
def register_commands(register):
    register(LANDCOVER_COMMAND)
