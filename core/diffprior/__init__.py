"""diffprior: pretrained diffusion models as plug-and-play priors.

The public API is imported lazily so that ``import diffprior`` (and the CLI) does not pay
for torch until a prior, variable or term is actually used.
"""

from __future__ import annotations

from diffprior.lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    # concepts
    "Prior": "diffprior.method.priors",
    "GaussianPrior": "diffprior.method.priors",
    "NoiseSchedule": "diffprior.method.noise",
    "Variable": "diffprior.method.variables",
    "Pixels": "diffprior.method.variables",
    "BoundedPixels": "diffprior.method.variables",
    "SimplexLabelMap": "diffprior.method.variables",
    "Term": "diffprior.method.terms",
    "MaskedGaussian": "diffprior.method.terms",
    "check_image_shape": "diffprior.method.terms",
    "Schedule": "diffprior.method.schedules",
    "Options": "diffprior.config.options",
    "optimize": "diffprior.method.optimizer",
    "WeightedTerm": "diffprior.method.optimizer",
    "Result": "diffprior.method.optimizer",
    "StepState": "diffprior.method.optimizer",
    # errors
    "ConfigError": "diffprior.errors",
    "UsageError": "diffprior.errors",
    "PluginError": "diffprior.errors",
    "NonFiniteError": "diffprior.errors",
    # configs and plugins
    "PluginConfig": "diffprior.config.registrable",
    "PriorConfig": "diffprior.config.bases",
    "VariableConfig": "diffprior.config.bases",
    "TermConfig": "diffprior.config.bases",
    "BuildContext": "diffprior.config.bases",
    "OutputContext": "diffprior.config.bases",
    "resolve_path": "diffprior.config.bases",
    "ExistingPath": "diffprior.config.bases",
    "ClipPolicy": "diffprior.method.clipping",
    "ScheduleValue": "diffprior.method.schedules",
    "parse_schedule": "diffprior.method.schedules",
    "load_config": "diffprior.config.files",
    "read_config_file": "diffprior.config.files",
    "apply_overrides": "diffprior.config.files",
    "validate_config": "diffprior.config.run_config",
    "lazy_exports": "diffprior.lazy",
    "hookimpl": "diffprior.plugins.hooks",
    "Command": "diffprior.cli.command",
    "subcommands": "diffprior.cli.command",
    "positive_int": "diffprior.cli.command",
    "Dataset": "diffprior.plugins.datasets",
    "load_dataset": "diffprior.plugins.datasets",
    "get_registry": "diffprior.plugins.registry",
    "register_plugin": "diffprior.plugins.registry",
    "unregister_plugin": "diffprior.plugins.registry",
    "per_sample_randn": "diffprior.method.rng",
    "generators": "diffprior.method.rng",
    "save_grid": "diffprior.runs.outputs",
    "load_tensors": "diffprior.tensorfiles",
    "load_torch_weights": "diffprior.tensorfiles",
    "save_weights": "diffprior.tensorfiles",
    "run": "diffprior.runs.runner",
    "solve": "diffprior.runs.runner",
    # sharding and several processes
    "Shard": "diffprior.runs.sharding",
    "shard_range": "diffprior.runs.sharding",
    "process_rows": "diffprior.runs.sharding",
    "batches_of": "diffprior.runs.sharding",
    "shard_argument": "diffprior.runs.sharding",
    "missing_shards": "diffprior.runs.sharding",
    "read_part": "diffprior.runs.sharding",
    "distributed": "diffprior.runs.distributed",  # the module: setup, gather, all_sum, barrier, current
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY, also=["__version__"])
