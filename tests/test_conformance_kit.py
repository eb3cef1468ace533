"""The conformance kit catches each contract violation it promises to catch, and passes the core."""

from __future__ import annotations

import subprocess
import sys
from typing import ClassVar, Literal

import pytest
import torch

from diffprior import Term
from diffprior.plugins.builtins import BoundedPixelsConfig, GaussianPriorConfig, MatchConfig, PixelsConfig, SimplexLabelsConfig
from diffprior.config.bases import TermConfig
from diffprior.testing import ConformanceError, check_config, check_lazy_import, check_prior, check_term, check_variable


class ScoredTerm(Term):
    def __init__(self, config, ctx, score):
        super().__init__(config, ctx)
        self.score = score

    def log_c(self, x):
        return self.score(x)


def term_config(score, *, weight=0.5, clip="none", name="probe"):
    """A term config class whose log_c is ``score(x)``."""

    class ProbeConfig(TermConfig):
        type: Literal[name] = name  # type: ignore[valid-type]
        default_weight: ClassVar = weight
        default_clip: ClassVar = clip

        def build(self, ctx):
            return ScoredTerm(self, ctx, score)

    return ProbeConfig


def good_score(x):
    return -(x**2).flatten(1).sum(1)


def test_the_core_passes():
    check_term(MatchConfig, {"target": 0.5})
    check_prior(GaussianPriorConfig, {"shape": [1, 4, 4], "var": 0.5})
    for config in (PixelsConfig, BoundedPixelsConfig):
        check_variable(config)
    check_variable(SimplexLabelsConfig, prior=(3, 4, 4))


def test_a_well_behaved_term_passes_and_reports_what_it_computed():
    report = check_term(term_config(good_score), batch=4)
    assert report.log_c.shape == (4,) and torch.allclose(report.grad, -2 * report.x)


@pytest.mark.parametrize(
    "score, message",
    [
        (lambda x: -(x**2).sum(), "one score per sample"),
        (lambda x: -(x**2).flatten(1).sum(1) - x.mean(), "must not mix samples"),
        (lambda x: (x**2).flatten(1).sum(1).detach(), "not differentiable"),
        (lambda x: torch.zeros(x.shape[0]) + 0 * x.flatten(1).sum(1), "zero everywhere"),
        (lambda x: (x - 2).flatten(1).sum(1).sqrt(), "non-finite"),
    ],
    ids=["batch-sum", "batch-mean", "detached", "zero-gradient", "nan"],
)
def test_term_violations_are_caught(score, message):
    with pytest.raises(ConformanceError, match=message):
        check_term(term_config(score))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"weight": {"linear": [1.0]}}, "default_weight"), ({"weight": "often"}, "default_weight"),
     ({"clip": {"sometimes": 1}}, "default_clip")],
)
def test_invalid_default_schedules_and_clip_policies_are_caught(kwargs, message):
    with pytest.raises(ConformanceError, match=message):
        check_config(term_config(good_score, **kwargs))


def test_a_term_must_declare_its_own_defaults():
    class Undeclared(TermConfig):
        type: Literal["undeclared"] = "undeclared"

    with pytest.raises(ConformanceError, match="must declare its own default_weight"):
        check_config(Undeclared)


def test_a_config_that_does_not_round_trip_through_json_is_caught():
    from typing import Annotated

    from pydantic import PlainSerializer

    class Lossy(TermConfig):
        type: Literal["lossy"] = "lossy"
        default_weight: ClassVar = 1.0
        default_clip: ClassVar = "none"
        level: Annotated[float, PlainSerializer(round)] = 0.0  # writes 1.4 as 1

    check_config(Lossy, {"level": 2.0})
    with pytest.raises(ConformanceError, match="does not round-trip through JSON"):
        check_config(Lossy, {"level": 1.4})


def test_a_config_that_accepts_unknown_keys_is_caught():
    class Open(TermConfig):
        model_config = {"extra": "allow"}
        type: Literal["open"] = "open"
        default_weight: ClassVar = 1.0
        default_clip: ClassVar = "none"

    with pytest.raises(ConformanceError, match="accepts unknown keys"):
        check_config(Open)


def test_a_prior_with_batch_statistics_is_caught():
    from diffprior import GaussianPrior, NoiseSchedule

    class BatchNormed(GaussianPrior):
        def eps(self, x_t, t):
            return super().eps(x_t, t) - x_t.mean(0, keepdim=True)

    prior = BatchNormed(torch.zeros(1, 4, 4), torch.ones(1, 4, 4), NoiseSchedule.linear(100))
    with pytest.raises(ConformanceError, match="per-sample independence"):
        check_prior(prior)


def test_the_lazy_import_check_runs_in_a_fresh_interpreter():
    check_lazy_import("diffprior.plugins.builtins")
    with pytest.raises(ConformanceError, match="imports torch"):
        check_lazy_import("diffprior.method.terms")
    with pytest.raises(ConformanceError, match="No module named"):
        check_lazy_import("diffprior.no_such_module")


def test_importing_the_kit_is_cheap():
    code = "import sys, diffprior.testing; print(sorted(m for m in ('torch', 'timm', 'pydantic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------ schedules
from diffprior.method.schedules import Schedule  # noqa: E402
from diffprior.testing import check_schedule  # noqa: E402


@pytest.mark.parametrize("name, params", [
    ("constant", {"value": 2.0}), ("linear", {"start": 1.0, "end": 0.0}), ("cosine", {"start": 1.0, "end": 0.1}),
    ("exponential", {"start": 1e-2, "end": 1e-4}), ("piecewise", {"points": [[0, 1], [0.5, 0.2], [1, 0]]}),
    ("cosine-linear", {}),
])
def test_the_core_schedules_pass(name, params):
    from diffprior.plugins.registry import get_registry

    schedule = check_schedule(get_registry().schedules[name].obj, params)
    assert schedule.type == name


class Warmup(Schedule):
    """Linear warm-up to ``peak`` over the first ``fraction`` of the run, then constant."""

    type: Literal["warmup"] = "warmup"
    peak: float
    fraction: float = 0.1

    def __call__(self, s, step=0, steps=1):
        return self.peak * min(1.0, s / self.fraction)


class Stateful(Warmup):
    type: Literal["stateful"] = "stateful"
    calls: ClassVar[list] = []

    def __call__(self, s, step=0, steps=1):
        self.calls.append(s)
        return float(len(self.calls))


class NotANumber(Warmup):
    type: Literal["nan-at-end"] = "nan-at-end"

    def __call__(self, s, step=0, steps=1):
        return float("nan") if s == 1.0 else 1.0


class ReturnsATensor(Warmup):
    type: Literal["tensor"] = "tensor"

    def __call__(self, s, step=0, steps=1):
        return torch.tensor(s)


class AddsItsOwnJitter(Warmup):
    type: Literal["own-jitter"] = "own-jitter"

    def __call__(self, s, step=0, steps=1):
        return s + self.jitter


def test_a_plugin_schedule_passes():
    assert check_schedule(Warmup, {"peak": 0.01})(1.0) == 0.01


@pytest.mark.parametrize("cls, message", [
    (Stateful, "keep no state between calls"),
    (NotANumber, "a schedule must be finite"),
    (ReturnsATensor, "must return a float, got Tensor"),
    (AddsItsOwnJitter, "jitter must not change"),
])
def test_schedule_violations_are_caught(cls, message):
    with pytest.raises(ConformanceError, match=message):
        check_schedule(cls, {"peak": 1.0})
