"""Schedules: a value as a function of progress s = step / steps in [0, 1].

Any scalar of a run (learning rate, term weight, clip ratio, prior weight, timestep) may be
a schedule. Pure Python: no torch.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal, Mapping

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationInfo, WithJsonSchema, model_validator

from diffprior.errors import unknown_name_message
from diffprior.config.registrable import PluginConfig


class Schedule(PluginConfig):
    """Base class. ``schedule(s, step, steps)`` is the value at progress s (step i of ``steps``).

    ``jitter``: uniform noise in [-jitter, jitter] the optimizer adds per sample and step,
    drawn from that sample's generator (used by timesteps and term weights).
    """

    kind: ClassVar[str] = "schedule"
    jitter: float = Field(0.0, ge=0.0)

    def __call__(self, s: float, step: int = 0, steps: int = 1) -> float:
        raise NotImplementedError

    def at_step(self, step: int, steps: int) -> float:
        return self(step / max(steps, 1), step, steps)


class Constant(Schedule):
    """The same value throughout."""

    type: Literal["constant"] = "constant"
    value: float

    def __call__(self, s, step=0, steps=1):
        return self.value


class Linear(Schedule):
    """start + (end - start)·s."""

    type: Literal["linear"] = "linear"
    start: float
    end: float

    def __call__(self, s, step=0, steps=1):
        return self.start + (self.end - self.start) * s


class Cosine(Schedule):
    """Half-cosine from start (s = 0) to end (s = 1)."""

    type: Literal["cosine"] = "cosine"
    start: float
    end: float

    def __call__(self, s, step=0, steps=1):
        return self.end + (self.start - self.end) * 0.5 * (1 + math.cos(math.pi * s))


class Exponential(Schedule):
    """Geometric interpolation start·(end/start)^s; both must have the same sign."""

    type: Literal["exponential"] = "exponential"
    start: float
    end: float

    @model_validator(mode="after")
    def _same_sign(self):
        if self.start * self.end <= 0:
            raise ValueError("exponential schedule needs start and end non-zero and of the same sign")
        return self

    def __call__(self, s, step=0, steps=1):
        return self.start * (self.end / self.start) ** s


class Piecewise(Schedule):
    """Piecewise-linear through points [[s0, v0], [s1, v1], ...] with increasing s."""

    type: Literal["piecewise"] = "piecewise"
    points: list[tuple[float, float]] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _sorted(self):
        xs = [p[0] for p in self.points]
        if xs != sorted(xs):
            raise ValueError("piecewise points must have increasing progress values")
        return self

    def __call__(self, s, step=0, steps=1):
        pts = self.points
        if s <= pts[0][0]:
            return pts[0][1]
        for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
            if s <= s1:
                return v0 if s1 == s0 else v0 + (v1 - v0) * (s - s0) / (s1 - s0)
        return pts[-1][1]


class CosineLinear(Schedule):
    """The paper's cosine-modulated, linearly decreasing schedule.

    With r = 1 - s (remaining fraction) and i the step index:
    value = low + (high - low) · (scale·r + amplitude·r·cos(i / period)).
    The defaults are the paper's digits recipe; each plugin's recipes set their own.
    """

    type: Literal["cosine-linear"] = "cosine-linear"
    high: float = 1000.0
    low: float = 0.0
    scale: float = 1.0
    amplitude: float = 0.25
    period: float = Field(50.0, gt=0)

    def __call__(self, s, step=0, steps=1):
        r = 1.0 - s
        return self.low + (self.high - self.low) * (self.scale * r + self.amplitude * r * math.cos(step / self.period))


BUILTIN_SCHEDULES = (Constant, Linear, Cosine, Exponential, Piecewise, CosineLinear)
BUILTIN_SCHEDULE_CLASSES: dict[str, type[Schedule]] = {cls.type_name(): cls for cls in BUILTIN_SCHEDULES}


def as_schedule(value: "float | Schedule") -> Schedule:
    """A schedule as it is, a number as a :class:`Constant`."""
    return value if isinstance(value, Schedule) else Constant(value=float(value))


# --------------------------------------------------------------------------- parsing
def schedule_classes(registry=None) -> Mapping[str, type]:
    """Schedule classes by name: the registry's when one is given, else the built-ins."""
    if registry is None:
        return BUILTIN_SCHEDULE_CLASSES
    return {name: reg.obj for name, reg in registry.schedules.items()}


def _registry_of(info: ValidationInfo | None):
    return (info.context or {}).get("registry") if info is not None else None


def parse_schedule(value: Any, info: ValidationInfo | None = None, *, registry=None) -> Any:
    """A number, ``{type = "linear", start = 1, end = 0}``, or the short ``{linear = [1, 0]}``.

    Built-in schedules resolve without plugin discovery. A name that is not built in is
    looked up in ``registry`` (or the validation context's ``registry``); only when neither
    is given are the installed plugins discovered.
    """
    if isinstance(value, Schedule):
        return value
    if isinstance(value, bool):
        raise ValueError("a schedule is a number or a table, not a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"a schedule value must be finite, got {value}")
        return Constant(value=value)
    if not isinstance(value, dict):
        raise ValueError(
            "a schedule is a number, a table with a 'type' key, or a short table like "
            "{linear = [0.01, 0.0]}"
        )
    registry = registry if registry is not None else _registry_of(info)
    data = dict(value)
    names = set(data) - {"jitter"} if "type" not in data else {data["type"]}
    classes = schedule_classes(registry)
    if registry is None and not names <= set(classes):  # a plugin's schedule: discover plugins
        from diffprior.plugins.registry import get_registry

        classes = schedule_classes(get_registry())
    if "type" not in data:
        named = [k for k in data if k in classes]
        if len(named) != 1:
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
        raise ValueError(unknown_name_message("schedule", name, classes))
    return classes[name].model_validate(data)


def _validate_schedule(value: Any, info: ValidationInfo) -> Any:
    return parse_schedule(value, info)


_SCHEDULE_JSON_SCHEMA = {
    "anyOf": [
        {"type": "number"},
        {"type": "object", "description": "a schedule: {type = NAME, ...} or {NAME = [args...]}"},
    ],
    "description": "A scalar or a schedule of progress s in [0, 1] (see `diffprior schema` $defs for schedule types).",
}

ScheduleValue = Annotated[
    Any,
    BeforeValidator(_validate_schedule),
    PlainSerializer(lambda s: s.model_dump(mode="json"), return_type=dict),
    WithJsonSchema(_SCHEDULE_JSON_SCHEMA),
]
"""A config field holding a number or a schedule; validated into a :class:`Schedule`."""
