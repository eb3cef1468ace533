"""diffprior: pretrained diffusion models as plug-and-play priors.

The public API is imported lazily so that ``import diffprior`` (and the CLI) does not pay
for torch until a prior, variable or term is actually used.
"""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    # concepts
    "Prior": "diffprior.priors",
    "GaussianPrior": "diffprior.priors",
    "NoiseSchedule": "diffprior.noise",
    "Variable": "diffprior.variables",
    "Pixels": "diffprior.variables",
    "BoundedPixels": "diffprior.variables",
    "SimplexLabelMap": "diffprior.variables",
    "Term": "diffprior.terms",
    "MaskedQuadratic": "diffprior.terms",
    "check_image_shape": "diffprior.terms",
    "Schedule": "diffprior.schedules",
    "Options": "diffprior.options",
    "optimize": "diffprior.optimizer",
    "RunOptions": "diffprior.optimizer",  # deprecated: Options
    "WeightedTerm": "diffprior.optimizer",
    "Result": "diffprior.optimizer",
    "StepState": "diffprior.optimizer",
    # errors
    "ConfigError": "diffprior.errors",
    "UsageError": "diffprior.errors",
    "PluginError": "diffprior.errors",
    "NonFiniteError": "diffprior.errors",
    # configs and plugins
    "PluginConfig": "diffprior.registrable",
    "PriorConfig": "diffprior.bases",
    "VariableConfig": "diffprior.bases",
    "TermConfig": "diffprior.bases",
    "BuildContext": "diffprior.bases",
    "resolve_path": "diffprior.bases",
    "ExistingPath": "diffprior.bases",
    "ClipPolicy": "diffprior.clipping",
    "ScheduleValue": "diffprior.schedules",
    "load_config": "diffprior.config_files",
    "hookimpl": "diffprior.hookspecs",
    "Command": "diffprior.command",
    "get_registry": "diffprior.plugins",
    "register_plugin": "diffprior.plugins",
    "unregister_plugin": "diffprior.plugins",
    "per_sample_randn": "diffprior.rng",
    "generators": "diffprior.rng",
    "save_grid": "diffprior.outputs",
    "load_tensors": "diffprior.tensorfiles",
    "load_torch_weights": "diffprior.tensorfiles",
    "save_weights": "diffprior.tensorfiles",
    "run": "diffprior.runner",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, also=["__version__"])
