"""Schedules: a value as a function of progress s = step / steps in [0, 1].

Any scalar of a run (learning rate, term weight, clip ratio, prior weight, timestep) may be
a schedule. Pure Python: no torch.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from .config import PluginConfig


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
    Digits: high = 1000, amplitude = 0.25, period = 50. TSP: amplitude = 1/3.
    Faces: low = 200, high = 1000, scale = 1/1.5, amplitude = 1/3, period = 10, jitter = 50.
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
