"""Config models and config files.

Every plugin contributes a pydantic model with a literal ``type`` tag. The run config is a
model whose ``prior``, ``variable`` and ``terms`` fields are discriminated unions of the
models that the installed plugins registered, assembled after discovery. No torch here.
"""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)


class ConfigError(ValueError):
    """A config (file, override or model) is invalid. The CLI exits with code 2."""

    def __init__(self, message: str, *, source: str | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class PluginConfig(BaseModel):
    """Base of every registrable config: a literal ``type`` tag and forbidden extra keys."""

    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)
    kind: ClassVar[str] = ""
    type: str

    @classmethod
    def type_name(cls) -> str:
        field = cls.model_fields.get("type")
        if field is None or not isinstance(field.default, str):
            raise TypeError(f"{cls.__name__} needs a field like: type: Literal['name'] = 'name'")
        return field.default


# --------------------------------------------------------------------------- schedules
def _schedule_classes() -> dict[str, type]:
    from .plugins import get_registry

    return {name: reg.obj for name, reg in get_registry().schedules.items()}


def parse_schedule(value: Any) -> Any:
    """A number, ``{type = "linear", start = 1, end = 0}``, or the short ``{linear = [1, 0]}``."""
    from .schedules import Schedule

    if isinstance(value, Schedule):
        return value
    if isinstance(value, bool):
        raise ValueError("a schedule is a number or a table, not a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"a schedule value must be finite, got {value}")
        return _schedule_classes()["constant"](value=value)
    if not isinstance(value, dict):
        raise ValueError(
            "a schedule is a number, a table with a 'type' key, or a short table like "
            "{linear = [0.01, 0.0]}"
        )
    classes = _schedule_classes()
    data = dict(value)
    if "type" not in data:
        named = [k for k in data if k in classes]
        if len(named) != 1:
            from .plugins import unknown_name_message

            candidates = [k for k in data if k != "jitter"]
            if len(candidates) == 1:
                raise ValueError(unknown_name_message("schedule", candidates[0], classes))
            raise ValueError("a schedule table needs a 'type' key, e.g. {type = 'linear', start = 1, end = 0}")
        name = named[0]
        args = data.pop(name)
        fields = [f for f in classes[name].model_fields if f not in ("type", "jitter")]
        if isinstance(args, dict):
            data.update(args)
        else:
            args = list(args) if isinstance(args, (list, tuple)) else [args]
            if len(args) > len(fields):
                raise ValueError(f"schedule {name!r} takes at most {len(fields)} values ({', '.join(fields)})")
            data.update(zip(fields, args))
        data["type"] = name
    name = data["type"]
    if name not in classes:
        from .plugins import unknown_name_message

        raise ValueError(unknown_name_message("schedule", name, classes))
    return classes[name].model_validate(data)


_SCHEDULE_JSON_SCHEMA = {
    "anyOf": [
        {"type": "number"},
        {"type": "object", "description": "a schedule: {type = NAME, ...} or {NAME = [args...]}"},
    ],
    "description": "A scalar or a schedule of progress s in [0, 1] (see `diffprior schema` $defs for schedule types).",
}

ScheduleValue = Annotated[
    Any,
    BeforeValidator(parse_schedule),
    PlainSerializer(lambda s: s.model_dump(mode="json"), return_type=dict),
    WithJsonSchema(_SCHEDULE_JSON_SCHEMA),
]


# --------------------------------------------------------------------------- clipping
class ClipPolicy(BaseModel):
    """How a term's gradient is clipped, per sample.

    - ``none``: not clipped;
    - ``{max_norm = v}``: the term's gradient norm is at most v;
    - ``{relative = r}``: at most r times an EMA (factor ``ema``) of the prior-gradient norm.
    Both ``max_norm`` and ``relative`` may be schedules.
    """

    model_config = ConfigDict(extra="forbid")
    mode: Literal["none", "max_norm", "relative"] = "none"
    value: Optional[ScheduleValue] = None
    ema: float = Field(0.5, ge=0.0, lt=1.0)

    @classmethod
    def parse(cls, value: Any) -> Any:
        if value is None or value == "none":
            return {"mode": "none"}
        if isinstance(value, dict) and "mode" not in value:
            data = dict(value)
            for mode in ("max_norm", "relative"):
                if mode in data:
                    return {"mode": mode, "value": data.pop(mode), **data}
            raise ValueError("a clip policy is 'none', {max_norm = V} or {relative = R, ema = 0.5}")
        return value

    @property
    def needs_own_gradient(self) -> bool:
        return self.mode != "none"


ClipValue = Annotated[ClipPolicy, BeforeValidator(ClipPolicy.parse)]


# --------------------------------------------------------------------------- plugin bases
def resolve_path(value: Any, info: ValidationInfo, *, must_exist: bool = True) -> Path:
    """Resolve a path relative to the config file's folder (validation context ``base_dir``)."""
    path = Path(str(value)).expanduser()
    base = (info.context or {}).get("base_dir") if info is not None else None
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if must_exist and not path.exists():
        raise ValueError(f"file not found: {path}")
    return path


ExistingPath = Annotated[Path, AfterValidator(resolve_path)]
"""A file that must exist, relative to the config file's folder: ``Optional[ExistingPath]``."""


class PriorConfig(PluginConfig):
    kind: ClassVar[str] = "prior"

    def build(self, ctx: "BuildContext"):
        raise NotImplementedError


class VariableConfig(PluginConfig):
    kind: ClassVar[str] = "variable"

    def build(self, ctx: "BuildContext"):
        raise NotImplementedError


class TermConfig(PluginConfig):
    """A constraint. Subclasses set ``default_weight`` and ``default_clip``; configs may override."""

    kind: ClassVar[str] = "term"
    default_weight: ClassVar[Any] = 1.0
    default_clip: ClassVar[Any] = "none"

    name: Optional[str] = Field(None, description="label for metrics and plots (default: the type)")
    weight: Optional[ScheduleValue] = Field(None, description="λ: a number or a schedule (default: the term's own)")
    clip: Optional[ClipValue] = Field(None, description="gradient clip policy (default: the term's own)")

    def resolved_weight(self):
        return self.weight if self.weight is not None else parse_schedule(self.default_weight)

    def resolved_clip(self) -> ClipPolicy:
        return self.clip if self.clip is not None else ClipPolicy.model_validate(ClipPolicy.parse(self.default_clip))

    def build(self, ctx: "BuildContext"):
        raise NotImplementedError


class BuildContext:
    """What a config's ``build`` gets: the prior (once built), device, dtype and run length."""

    def __init__(self, *, device: str = "cpu", prior=None, steps: int = 1, base_dir: Path | None = None):
        self.device = device
        self.prior = prior
        self.steps = steps
        self.base_dir = base_dir


# --------------------------------------------------------------------------- the run config
class OptimizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)
    type: Literal["adam", "adamax", "sgd"] = "adam"
    lr: ScheduleValue = 0.01
    steps: int = Field(1000, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = Field(0.0, ge=0.0)
    weight_decay: float = Field(0.0, ge=0.0)

    @field_validator("lr")
    @classmethod
    def _no_lr_jitter(cls, value):
        if getattr(value, "jitter", 0):
            raise ValueError("the learning rate is shared by the batch: its schedule cannot have jitter")
        return value


class InitConfig(BaseModel):
    """Where the variable's parameters start."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["variable", "noise", "zeros", "file"] = "variable"
    scale: float = Field(1.0, ge=0.0, description="standard deviation for 'noise'")
    path: Optional[ExistingPath] = Field(None, description="safetensors file with 'params' (or 'x') for 'file'")

    @model_validator(mode="after")
    def _file_needs_path(self):
        if self.type == "file" and self.path is None:
            raise ValueError("init type 'file' needs path = 'FILE.safetensors'")
        return self


class DenoiseConfig(BaseModel):
    """Optional clean-up after the optimisation: DDPM/DDIM from ``from_t`` to 0."""

    model_config = ConfigDict(extra="forbid")
    from_t: int = Field(..., gt=0)
    steps: Optional[int] = Field(None, gt=0, description="number of denoising steps (default: from_t)")
    method: Literal["ddpm", "ddim"] = "ddpm"


DEFAULT_TIMESTEPS = {"type": "cosine-linear", "high": 1000, "low": 0, "amplitude": 0.25, "period": 50}


class RunConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    timesteps: ScheduleValue = Field(
        default_factory=lambda: dict(DEFAULT_TIMESTEPS),
        description="t as a function of progress (clipped to [1, T-1]); jitter is drawn per sample",
    )
    prior_weight: ScheduleValue = Field(1.0, description="w(t) on the prior term (a schedule of progress)")
    gradient: Literal["full", "sds"] = Field(
        "full", description="full: back-propagate through eps_theta; sds: (eps_theta - eps) as the gradient"
    )
    noise_samples: int = Field(1, gt=0, description="ε draws per step for the prior term")
    init: InitConfig = Field(default_factory=InitConfig)
    denoise: Optional[DenoiseConfig] = None
    batch: int = Field(1, gt=0)
    seed: int = Field(0, ge=0)
    device: str = "cpu"


def _union(kind: str, classes: list[type]) -> Any:
    if not classes:
        return Any
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[tuple(classes)], Field(discriminator="type")]


def run_config_model(registry=None) -> type[RunConfigBase]:
    """The run-config model for the installed plugins."""
    from .plugins import get_registry

    registry = registry or get_registry()
    if not registry.priors:
        raise ConfigError("no prior types are installed; is the diffprior core installed correctly?")
    prior_t = _union("prior", registry.classes("prior"))
    variable_t = _union("variable", registry.classes("variable"))
    term_t = _union("term", registry.classes("term"))
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


# --------------------------------------------------------------------------- files
def read_config_file(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
            if data is None:
                return {}
            if not isinstance(data, dict):
                raise ConfigError("the top level of a config must be a mapping", source=str(path))
            return data
        if suffix == ".json":
            return json.loads(text)
    except ConfigError:
        raise
    except Exception as exc:  # TOMLDecodeError, YAMLError, JSONDecodeError carry line/column
        message = " ".join(str(exc).split())
        raise ConfigError(f"syntax error: {message}", source=str(path)) from None
    raise ConfigError(f"unsupported config format {suffix!r}: use .toml, .yaml, .yml or .json", source=str(path))


def _parse_scalar(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except Exception:
        return text


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=c`` overrides; list items are addressed by index (``terms.0.weight=0.5``)."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value", source="--set")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"{key}: {part!r} is not an index of a list of {len(node)}", source="--set")
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"{key}: {'.'.join(parts[:i])} is not a table", source="--set")
            if last:
                node[part] = _parse_scalar(value)
            else:
                if isinstance(node, dict) and part not in node:
                    node[part] = {}
                node = node[part]
    return data


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
        elif isinstance(item, str) and ("[" in item or item in ("constrained-str", "function-before", "function-after")):
            continue
        else:
            parts.append(str(item))
            parent, node = node, None
    return ".".join(parts) or "(top level)", node, parent


_KIND_OF_KEY = {"prior": "prior", "variable": "variable", "terms": "term"}


def format_validation_error(exc: ValidationError, data: dict, registry) -> list[str]:
    from .plugins import unknown_name_message

    lines = []
    for err in exc.errors(include_url=False):
        where, node, parent = _describe_loc(tuple(err["loc"]), data)
        kind_key = str(err["loc"][0]) if err["loc"] else ""
        etype = err["type"]
        if etype == "union_tag_invalid":
            kind = _KIND_OF_KEY.get(kind_key, "type")
            msg = unknown_name_message(kind, err["ctx"]["tag"], registry.names(kind) if kind in registry.entries else [])
            where = where + ".type"
        elif etype == "union_tag_not_found":
            kind = _KIND_OF_KEY.get(kind_key, "type")
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
    from .plugins import unknown_name_message

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
        elif isinstance(entry, dict) and entry["type"] not in registry.entries[kind]:
            lines.append(f"{where}.type: {unknown_name_message(kind, entry['type'], registry.names(kind))}")
    return lines


def validate_config(data: dict, *, source: str | None = None, base_dir: Path | None = None, registry=None):
    """Validate a raw config mapping into the run-config model; raise ConfigError."""
    from .plugins import get_registry

    registry = registry or get_registry()
    model = run_config_model(registry)
    unknown = _unknown_type_tags(data, registry)
    if unknown:
        raise ConfigError(unknown[0] if len(unknown) == 1 else "\n  " + "\n  ".join(unknown), source=source)
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        lines = format_validation_error(exc, data, registry)
        raise ConfigError(lines[0] if len(lines) == 1 else "\n  " + "\n  ".join(lines), source=source) from None


def load_config(path: Path | str, overrides: list[str] | None = None, registry=None):
    """Read, override and validate a config file."""
    path = Path(path)
    data = read_config_file(path)
    data = apply_overrides(data, overrides or [])
    return validate_config(data, source=str(path), base_dir=path.resolve().parent, registry=registry)


def json_schema(registry=None) -> dict:
    """The JSON Schema of run configs for the installed plugins, schedules included."""
    from .plugins import get_registry

    registry = registry or get_registry()
    schema = run_config_model(registry).model_json_schema()
    defs = schema.setdefault("$defs", {})
    for name, reg in sorted(registry.schedules.items()):
        defs[f"schedule:{name}"] = reg.obj.model_json_schema()
    return schema
