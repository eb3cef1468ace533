"""diffprior-images: image constraints (terms) and the small digit networks they use.

Terms: ``symmetry``, ``intensity``, ``classifier``, ``mask``, ``segmentation``.
Command: ``diffprior train-classifier``. Bundled networks: ``digits`` (guidance classifier),
``digits-judge`` (independent evaluation classifier), ``digits-strokes`` (stroke segmenter).
Importing this package does not import torch.
"""

from .bundled import ModelSpec, get_model_spec, model_names

__all__ = ["ModelSpec", "get_model_spec", "model_names"]
__version__ = "0.1.0"
