"""Gradient clip policies: what a term's ``clip = ...`` means, and the state it keeps.

A :class:`ClipPolicy` is the validated config (torch-free). For a run, ``policy.clipper()``
returns a fresh :class:`Clipper` per term: it receives that term's gradient and the prior's
gradient norm, per sample, and returns the clipped gradient. The state a policy needs (the
EMA of the prior-gradient norm for ``relative``) lives in the clipper, one value per sample,
so two terms, two runs or two samples never share it.

==============================  ================================================================
policy                          per sample i, the term's gradient g_i is scaled to norm at most
==============================  ================================================================
``"none"``                      (not clipped)
``{max_norm = v}``              v(s)
``{relative = r, ema = 0.5}``   r(s) · EMA_ema(‖g_prior,i‖) (EMA over steps, first value as is)
==============================  ================================================================

Both ``max_norm`` and ``relative`` may be schedules of progress s.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from diffprior.method.schedules import ScheduleValue


class ClipPolicy(BaseModel):
    """How a term's gradient is clipped, per sample (see the module's table)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    mode: Literal["none", "max_norm", "relative"] = "none"
    value: Optional[ScheduleValue] = None
    ema: float = Field(0.5, ge=0.0, lt=1.0)

    @classmethod
    def parse(cls, value: Any) -> Any:
        """The short forms ``"none"``, ``{max_norm = v}``, ``{relative = r}`` as model data."""
        if value is None or value == "none":
            return {"mode": "none"}
        if isinstance(value, dict) and "mode" not in value:
            data = dict(value)
            for mode in ("max_norm", "relative"):
                if mode in data:
                    return {"mode": mode, "value": data.pop(mode), **data}
            raise ValueError("a clip policy is 'none', {max_norm = V} or {relative = R, ema = 0.5}")
        return value

    @classmethod
    def of(cls, value: Any) -> "ClipPolicy":
        """A policy from a ClipPolicy, ``"none"``, or a short-form table."""
        return value if isinstance(value, cls) else cls.model_validate(cls.parse(value))

    @property
    def needs_own_gradient(self) -> bool:
        return self.mode != "none"

    def clipper(self) -> "Clipper":
        """A fresh clipper (with empty state) for one term of one run."""
        return CLIPPERS[self.mode](self)


_SCHEDULE_SCHEMA = {"anyOf": [{"type": "number"}, {"type": "object", "description": "a schedule"}]}
_CLIP_JSON_SCHEMA = {
    "description": "gradient clip policy: 'none', {max_norm = V}, {relative = R, ema = 0.5} or {mode, value, ema}",
    "anyOf": [
        {"const": "none"},
        {"type": "null"},
        {"type": "object", "additionalProperties": False, "required": ["max_norm"],
         "properties": {"max_norm": _SCHEDULE_SCHEMA}},
        {"type": "object", "additionalProperties": False, "required": ["relative"],
         "properties": {"relative": _SCHEDULE_SCHEMA, "ema": {"type": "number", "minimum": 0, "exclusiveMaximum": 1}}},
        {"type": "object", "additionalProperties": False,
         "properties": {"mode": {"enum": ["none", "max_norm", "relative"]}, "value": _SCHEDULE_SCHEMA,
                        "ema": {"type": "number", "minimum": 0, "exclusiveMaximum": 1}}},
    ],
}

ClipValue = Annotated[ClipPolicy, BeforeValidator(ClipPolicy.parse), WithJsonSchema(_CLIP_JSON_SCHEMA)]
"""A config field holding a clip policy in its short or long form (the JSON Schema says both)."""


def _norms(g):
    return g.flatten(1).norm(dim=1)


class Clipper:
    """Clips one term's gradient per sample; subclasses say what the limit is."""

    def __init__(self, policy: ClipPolicy):
        self.policy = policy

    def limit(self, prior_norm, s: float, step: int, steps: int):
        """The largest allowed gradient norm per sample [B], or None for no limit."""
        return None

    def __call__(self, grad, prior_norm, s: float, step: int, steps: int):
        limit = self.limit(prior_norm, s, step, steps)
        if limit is None:
            return grad
        factor = (limit / _norms(grad).clamp_min(1e-12)).clamp(max=1.0)
        return grad * factor.view(-1, *([1] * (grad.ndim - 1)))


class MaxNorm(Clipper):
    def limit(self, prior_norm, s, step, steps):
        return prior_norm.new_full(prior_norm.shape, self.policy.value(s, step, steps))


class RelativeToPrior(Clipper):
    """At most r times an EMA of the prior-gradient norm; the EMA is kept per sample."""

    def __init__(self, policy: ClipPolicy):
        super().__init__(policy)
        self.prior_norm_ema = None

    def limit(self, prior_norm, s, step, steps):
        prev, a = self.prior_norm_ema, self.policy.ema
        self.prior_norm_ema = prior_norm if prev is None else a * prev + (1 - a) * prior_norm
        return self.policy.value(s, step, steps) * self.prior_norm_ema


CLIPPERS: dict[str, type[Clipper]] = {"none": Clipper, "max_norm": MaxNorm, "relative": RelativeToPrior}
