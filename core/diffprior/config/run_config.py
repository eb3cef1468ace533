"""The run-config model and its validation against an explicit plugin registry.

The run config is :class:`diffprior.config.options.Options` plus ``prior``, ``variable`` and
``terms``: discriminated unions of the config classes the registry holds, assembled by
:func:`run_config_model`. :func:`validate_config` hands the registry to every validator
through pydantic's validation context (key ``registry``), next to ``base_dir`` (the config
file's folder), so nothing during validation reaches for the global registry. No torch.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Optional, Union

from pydantic import Field, PrivateAttr, ValidationError, create_model

from diffprior.errors import ConfigError
from diffprior.config.options import DenoiseConfig, InitConfig, OptimizerConfig, Options


class RunConfigBase(Options):
    """The options of a run; :func:`run_config_model` adds prior, variable and terms."""

    _base_dir: Optional[Path] = PrivateAttr(None)

    @property
    def base_dir(self) -> Optional[Path]:
        """The folder of the config file this was read from (None if made in Python)."""
        return self._base_dir

    def term_names(self) -> list[str]:
        """Each term's name in losses, metrics and outputs: its ``name``, else its type, with
        ``#2``, ``#3`` ... on repeats."""
        names, seen = [], {}
        for cfg in self.terms:
            base = cfg.name or cfg.type
            seen[base] = seen.get(base, 0) + 1
            names.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
        if len(set(names)) != len(names) or "prior" in names:
            raise ConfigError("terms: term names must be unique and not 'prior'; set name = '...' on each")
        return names

    def effective(self) -> "RunConfigBase":
        """This config with every term's weight and clip written out (the term type's default
        where the config set none): its dump reproduces the run after a plugin changes its defaults."""
        terms = [cfg.model_copy(update={"weight": cfg.resolved_weight(), "clip": cfg.resolved_clip()})
                 for cfg in self.terms]
        copy = self.model_copy(update={"terms": terms})
        copy._base_dir = self._base_dir
        return copy

    def components(self) -> list[tuple[str, Any]]:
        """(name, config) of the prior, the variable and each term, in that order."""
        return [("prior", self.prior), ("variable", self.variable), *zip(self.term_names(), self.terms)]


def _default_registry(registry):
    if registry is not None:
        return registry
    from diffprior.plugins.registry import get_registry  # only when the caller has none: discovers plugins

    return get_registry()


def _union(classes: list[type]) -> Any:
    if not classes:
        return Any
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[tuple(classes)], Field(discriminator="type")]


def run_config_model(registry=None) -> type[RunConfigBase]:
    """The run-config model for the plugins of ``registry`` (default: the installed ones)."""
    registry = _default_registry(registry)
    if not registry.priors:
        raise ConfigError("no prior types are installed; is the diffprior core installed correctly?")
    prior_t = _union(registry.classes("prior"))
    variable_t = _union(registry.classes("variable"))
    term_t = _union(registry.classes("term"))
    default_variable = registry.variables.get("pixels")
    return create_model(
        "RunConfig",
        __base__=RunConfigBase,
        prior=(prior_t, Field(..., description="the diffusion prior")),
        variable=(
            variable_t,
            Field(default_factory=(lambda: default_variable.obj()) if default_variable else None),
        ),
        terms=(list[term_t], Field(default_factory=list, description="the constraints")),
    )


def _describe_loc(loc: tuple, data: Any) -> tuple[str, Any, Any]:
    """Drop union-tag and validator components from a pydantic loc, following the raw data."""
    parts: list[str] = []
    node, parent = data, None
    for item in loc:
        if isinstance(node, dict) and item in node:
            parent, node = node, node[item]
            parts.append(str(item))
        elif isinstance(node, list) and isinstance(item, int) and item < len(node):
            parent, node = node, node[item]
            parts.append(str(item))
        elif isinstance(item, str) and isinstance(node, dict) and node.get("type") == item:
            continue  # discriminated-union tag
        elif isinstance(item, str) and ("[" in item or item.startswith("constrained-")):
            continue  # a union member's label: 'list[float]', 'function-after[check(), int]', 'constrained-str'
        else:
            parts.append(str(item))
            parent, node = node, None
    return ".".join(parts) or "(top level)", node, parent


_KIND_OF_KEY = {"prior": "prior", "variable": "variable", "terms": "term"}


def _plugin_union_at(loc: tuple) -> str | None:
    """The plugin kind whose union of config classes ``loc`` points at: ('prior',),
    ('variable',) or ('terms', i). Other unions (a plugin's own, another model's) keep
    pydantic's message."""
    kind = _KIND_OF_KEY.get(loc[0]) if loc else None
    if kind == "term":  # the union is each item of the terms list
        return kind if len(loc) == 2 and isinstance(loc[1], int) else None
    return kind if len(loc) == 1 else None


def format_validation_error(exc: ValidationError, data: dict, registry) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        where, node, parent = _describe_loc(tuple(err["loc"]), data)
        kind = _plugin_union_at(tuple(err["loc"]))
        etype = err["type"]
        if etype == "union_tag_invalid" and kind:
            msg = registry.unknown_message(kind, err["ctx"]["tag"])
            where = where + ".type"
        elif etype == "union_tag_not_found" and kind:
            msg = f"missing 'type' key; available {kind} types: " + ", ".join(registry.names(kind))
        elif etype == "extra_forbidden":
            key = where.rsplit(".", 1)[-1]
            siblings = _known_keys(err["loc"], data, registry)
            close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)
            msg = f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            if siblings:
                msg += "; allowed keys: " + ", ".join(siblings)
        elif etype == "missing":
            msg = "required key is missing"
        else:
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            if "input" in err and etype not in ("value_error",) and not isinstance(err["input"], (dict, list)):
                msg += f" (got {err['input']!r})"
        lines.append(f"{where}: {msg}")
    return lines


def _known_keys(loc: tuple, data: dict, registry) -> list[str]:
    """Field names of the model that holds the offending key (for 'did you mean')."""
    if len(loc) == 1:
        return sorted(run_config_model(registry).model_fields)
    head = loc[0]
    node: Any = data.get(head) if isinstance(data, dict) else None
    if head == "terms" and isinstance(node, list) and isinstance(loc[1], int) and loc[1] < len(node):
        node, kind = node[loc[1]], "term"
    else:
        kind = _KIND_OF_KEY.get(head)
    if kind and isinstance(node, dict) and node.get("type") in registry.entries[kind]:
        return sorted(registry.get(kind, node["type"]).model_fields)
    sub = {"optimizer": OptimizerConfig, "init": InitConfig, "denoise": DenoiseConfig}.get(head)
    return sorted(sub.model_fields) if sub else []


def _unknown_type_tags(data: dict, registry) -> list[str]:
    """Unknown ``type`` names, checked before pydantic: with a single registered class of a
    kind there is no discriminated union to report them."""
    if not isinstance(data, dict):
        return []
    places = [("prior", "prior", data.get("prior")), ("variable", "variable", data.get("variable"))]
    terms = data.get("terms")
    if isinstance(terms, list):
        places += [(f"terms.{i}", "term", entry) for i, entry in enumerate(terms)]
    lines = []
    for where, kind, entry in places:
        if isinstance(entry, dict) and "type" not in entry:
            lines.append(f"{where}: missing 'type' key; available {kind} types: " + ", ".join(registry.names(kind)))
        elif isinstance(entry, dict) and not isinstance(entry["type"], str):
            lines.append(f"{where}.type: a type is a name in quotes, got {entry['type']!r}; available {kind} "
                         "types: " + ", ".join(registry.names(kind)))
        elif isinstance(entry, dict) and entry["type"] not in registry.entries[kind]:
            lines.append(f"{where}.type: {registry.unknown_message(kind, entry['type'])}")
    return lines


def validate_config(data: dict, *, source: str | None = None, base_dir: Path | None = None, registry=None):
    """Validate a raw config mapping into the run-config model; raise ConfigError.

    ``registry`` (default: the installed plugins) decides which types exist and is passed
    to every validator in the validation context, with ``base_dir``."""
    registry = _default_registry(registry)
    model = run_config_model(registry)
    unknown = _unknown_type_tags(data, registry)
    if unknown:
        raise ConfigError(unknown[0] if len(unknown) == 1 else "\n  " + "\n  ".join(unknown), source=source)
    try:
        config = model.model_validate(data, context={"base_dir": base_dir, "registry": registry})
    except ValidationError as exc:
        lines = format_validation_error(exc, data, registry)
        raise ConfigError(lines[0] if len(lines) == 1 else "\n  " + "\n  ".join(lines), source=source) from None
    config._base_dir = Path(base_dir) if base_dir is not None else None
    from diffprior.config.checks import check_run

    problems = check_run(config)
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else "\n  " + "\n  ".join(problems), source=source)
    return config


def json_schema(registry=None) -> dict:
    """The JSON Schema of run configs for the plugins of ``registry``, schedules included."""
    registry = _default_registry(registry)
    schema = run_config_model(registry).model_json_schema()
    defs = schema.setdefault("$defs", {})
    for name, reg in sorted(registry.schedules.items()):
        defs[f"schedule:{name}"] = reg.obj.model_json_schema()
    return schema
