"""Configs, one import away: this module re-exports the config layer, split by role.

==========================  ===========================================================
module                      holds
==========================  ===========================================================
:mod:`diffprior.bases`      what plugins subclass: PriorConfig, VariableConfig,
                            TermConfig, BuildContext, ExistingPath, resolve_path
:mod:`diffprior.schedules`  Schedule and its built-ins, ScheduleValue, parse_schedule
:mod:`diffprior.clipping`   ClipPolicy and the per-term, per-sample clippers
:mod:`diffprior.options`    Options (the run options) and its parts
:mod:`diffprior.run_config` the run-config model, validation, error messages, schema
:mod:`diffprior.config_files` reading files, ``--set`` overrides, load_config
:mod:`diffprior.errors`     ConfigError and the other errors
==========================  ===========================================================

``from diffprior.config import TermConfig`` (and every name below) keeps working.
"""

from __future__ import annotations

from .bases import BuildContext, ExistingPath, PriorConfig, TermConfig, VariableConfig, resolve_path
from .clipping import ClipPolicy, ClipValue
from .config_files import apply_overrides, load_config, read_config_file
from .errors import ConfigError
from .options import DEFAULT_TIMESTEPS, DenoiseConfig, InitConfig, OptimizerConfig, Options
from .registrable import PluginConfig
from .run_config import (
    RunConfigBase,
    format_validation_error,
    json_schema,
    run_config_model,
    validate_config,
)
from .schedules import ScheduleValue, parse_schedule

__all__ = [
    "BuildContext", "ClipPolicy", "ClipValue", "ConfigError", "DEFAULT_TIMESTEPS", "DenoiseConfig", "ExistingPath",
    "InitConfig", "OptimizerConfig", "Options", "PluginConfig", "PriorConfig", "RunConfigBase", "ScheduleValue",
    "TermConfig", "VariableConfig", "apply_overrides", "format_validation_error", "json_schema", "load_config",
    "parse_schedule", "read_config_file", "resolve_path", "run_config_model", "validate_config",
]
