import math
import re

import pytest

from diffprior.errors import ConfigError
from diffprior.method.schedules import parse_schedule
from diffprior.method.schedules import Constant, Cosine, CosineLinear, Exponential, Linear, Piecewise


def test_endpoints_and_midpoints():
    assert Linear(start=1, end=0)(0.0) == 1 and Linear(start=1, end=0)(1.0) == 0
    assert Cosine(start=1, end=0)(0.5) == pytest.approx(0.5)
    assert Cosine(start=1, end=0)(0.25) > 0.75  # slow start
    assert Exponential(start=1, end=0.01)(0.5) == pytest.approx(0.1)
    pw = Piecewise(points=[(0, 1), (0.5, 0.2), (1, 0.2)])
    assert pw(0.25) == pytest.approx(0.6) and pw(0.75) == pytest.approx(0.2)


def test_cosine_linear_is_the_papers_digit_schedule():
    # t_i = ((S − i) + ((S − i)/4)·cos(i/50)) / S · T   (DESIGN.md §2, digits)
    S, T = 1000, 1000
    sched = CosineLinear(high=T, low=0, amplitude=0.25, period=50)
    for i in (0, 1, 137, 500, 999):
        expected = ((S - i) + ((S - i) / 4) * math.cos(i / 50)) / S * T
        assert sched.at_step(i, S) == pytest.approx(expected)


def test_cosine_linear_faces_variant():
    # ((S−i)/1.5 + (S−i)/3·cos(i/10))/S·800 + 200
    S = 200
    sched = CosineLinear(high=1000, low=200, scale=1 / 1.5, amplitude=1 / 3, period=10)
    for i in (0, 33, 199):
        expected = ((S - i) / 1.5 + (S - i) / 3 * math.cos(i / 10)) / S * 800 + 200
        assert sched.at_step(i, S) == pytest.approx(expected)


@pytest.mark.parametrize(
    "spec, s, value",
    [
        (0.3, 0.7, 0.3),
        ({"linear": [0.01, 0.0]}, 0.5, 0.005),
        ({"type": "cosine", "start": 2, "end": 0}, 1.0, 0.0),
        ({"exponential": {"start": 1e-3, "end": 1e-7}}, 0.0, 1e-3),
        ({"piecewise": [[[0, 0], [1, 10]]]}, 0.3, 3.0),
    ],
)
def test_short_and_long_forms(spec, s, value):
    assert parse_schedule(spec)(s) == pytest.approx(value)


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"lineer": [1, 0]}, "did you mean 'linear'"),
        ({"linear": [1, 0, 3]}, "at most 2 values"),
        ({"type": "exponential", "start": 1, "end": 0}, "same sign"),
        ({"type": "piecewise", "points": [[0.5, 1], [0.1, 2]]}, "increasing"),
        (True, "not a boolean"),
        ("fast", "a schedule is a number"),
    ],
)
def test_bad_schedules_say_why(spec, words):
    with pytest.raises((ValueError, ConfigError)) as info:
        parse_schedule(spec)
    assert words in str(info.value)


def test_round_trip_through_json():
    sched = parse_schedule({"linear": [0.01, 0.0]})
    again = parse_schedule(sched.model_dump(mode="json"))
    assert again == sched and isinstance(parse_schedule(2.0), Constant)


def test_each_schedule_at_its_ends_and_between():
    # the formulas of the docstrings, evaluated by hand
    assert Constant(value=0.3)(0.9, 7, 10) == 0.3
    assert Linear(start=2, end=-2)(0.25) == pytest.approx(1.0)
    assert Cosine(start=3, end=1)(0.0) == pytest.approx(3) and Cosine(start=3, end=1)(1.0) == pytest.approx(1)
    assert Cosine(start=3, end=1)(1 / 3) == pytest.approx(1 + 2 * 0.5 * (1 + 0.5))  # cos(π/3) = 1/2
    assert Exponential(start=-1, end=-0.01)(0.5) == pytest.approx(-0.1)  # both negative is allowed
    assert Exponential(start=8, end=1)(1 / 3) == pytest.approx(4.0)


def test_piecewise_outside_its_points_and_at_a_jump():
    pw = Piecewise(points=[(0.2, 5.0), (0.4, 1.0), (0.4, 3.0), (0.8, 7.0)])
    assert pw(0.0) == 5.0 and pw(0.2) == 5.0  # before and at the first point: its value
    assert pw(0.3) == pytest.approx(3.0)  # halfway from 5 to 1
    assert pw(0.4) == 1.0  # at a jump the left value
    assert pw(0.5) == pytest.approx(4.0)  # a quarter of the way from 3 to 7
    assert pw(0.9) == 7.0 and pw(1.0) == 7.0  # after the last point: its value
    assert Piecewise(points=[(0.5, 2.0)])(0.9) == 2.0


def test_at_step_is_the_value_at_step_over_steps():
    lin = Linear(start=0, end=8)
    assert [lin.at_step(i, 4) for i in range(5)] == [0, 2, 4, 6, 8]
    assert lin.at_step(1, 1) == 8 and lin.at_step(0, 0) == 0  # no division by zero steps
    # cosine-linear reads the step index itself (its cosine), not only s
    cl = CosineLinear(high=10, low=0, scale=0, amplitude=1, period=1)
    assert cl.at_step(2, 4) == pytest.approx(0.5 * 10 * math.cos(2))


def test_exponential_needs_two_non_zero_ends_of_one_sign():
    for start, end in ((1, 0), (0, 1), (-1, 1)):
        with pytest.raises(ValueError, match="same sign"):
            Exponential(start=start, end=end)


@pytest.mark.parametrize("spec, words", [
    (float("inf"), "must be finite"),
    ([1, 0], "a schedule is a number"),
    ({"linear": [1, 0], "cosine": [1, 0]}, "needs a 'type' key"),
    ({"jitter": 2}, "needs a 'type' key"),
    ({"type": "lineer", "start": 1, "end": 0}, "unknown schedule type 'lineer'"),
    ({"cosine-linear": [1, 0, 1, 0.25, 50, 9]}, "at most 5 values"),
])
def test_more_bad_schedules_say_why(spec, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_schedule(spec)


def test_short_forms_fill_the_fields_in_order_and_keep_the_jitter():
    sched = parse_schedule({"cosine-linear": [900, 100, 0.5], "jitter": 3})
    assert (sched.high, sched.low, sched.scale, sched.amplitude, sched.jitter) == (900, 100, 0.5, 0.25, 3)
    assert parse_schedule({"linear": {"start": 4, "end": 2}})(0.5) == 3
    assert parse_schedule({"constant": 7})(0.1) == 7  # one value need not be a list
    assert parse_schedule(Linear(start=1, end=0)) == Linear(start=1, end=0)
    assert parse_schedule(3) == Constant(value=3.0)


def test_a_schedule_in_a_config_is_looked_up_in_the_validation_context_registry():
    """A name that is not built in comes from the registry handed to validation (not the
    installed plugins): a schedule type only that registry holds validates, and an empty
    registry does not know it."""
    from typing import Literal

    from diffprior import Options
    from diffprior.plugins.registry import PluginSettings, Registration, Registry
    from diffprior.method.schedules import Schedule

    class Halfway(Schedule):
        type: Literal["halfway"] = "halfway"
        value: float = 1.0

        def __call__(self, s, step=0, steps=1):
            return self.value if s >= 0.5 else 0.0

    from diffprior.method.schedules import BUILTIN_SCHEDULE_CLASSES

    def registry_with(classes):
        registry = Registry(PluginSettings())
        for name, cls in classes.items():
            registry.entries["schedule"][name] = Registration("schedule", name, cls, "test")
        return registry

    registry = registry_with(BUILTIN_SCHEDULE_CLASSES | {"halfway": Halfway})
    options = Options.model_validate({"prior_weight": {"halfway": [3.0]}}, context={"registry": registry})
    assert options.prior_weight(0.6) == 3.0 and options.prior_weight(0.4) == 0.0
    with pytest.raises(ValueError, match="unknown schedule type 'halfway'"):
        Options.model_validate({"prior_weight": {"halfway": [3.0]}},
                               context={"registry": registry_with(BUILTIN_SCHEDULE_CLASSES)})


def test_cosine_linear_called_without_a_step_uses_step_zero():
    # value = low + (high − low)·(scale·r + amplitude·r·cos(step/period)), cos(0) = 1
    assert CosineLinear(high=10, low=0, scale=0, amplitude=1, period=1)(0.5) == pytest.approx(5.0)


def test_at_step_passes_the_step_and_the_number_of_steps():
    from typing import Literal

    from diffprior.method.schedules import Schedule

    class StepsLeft(Schedule):  # a plugin schedule may count steps rather than progress
        type: Literal["steps-left"] = "steps-left"

        def __call__(self, s, step=0, steps=1):
            return float(steps - step)

    assert StepsLeft().at_step(3, 7) == 4.0


@pytest.mark.parametrize("spec, message", [
    (False, "a schedule is a number or a table, not a boolean"),
    ({"jitter": 2}, "a schedule table needs a 'type' key, e.g. {type = 'linear', start = 1, end = 0}"),
    ({"cosine-linear": [1, 0, 1, 0.25, 50, 9]},
     "schedule 'cosine-linear' takes at most 5 values (high, low, scale, amplitude, period)"),
    ("fast", "a schedule is a number, a table with a 'type' key, or a short table like {linear = [0.01, 0.0]}"),
])
def test_the_whole_message_of_a_bad_schedule(spec, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        parse_schedule(spec)


def test_as_schedule_wraps_numbers_and_keeps_schedules():
    from diffprior.method.schedules import Schedule, as_schedule

    linear = Linear(start=1, end=0)
    assert as_schedule(linear) is linear
    constant = as_schedule(2)
    assert constant == Constant(value=2.0) and isinstance(constant.value, float) and constant(0.7) == 2.0
    with pytest.raises(NotImplementedError):
        Schedule.__call__(linear, 0.5)  # the base class has no formula


def _halfway_plugin():
    import types
    from typing import Literal

    from diffprior import hookimpl
    from diffprior.method.schedules import Schedule

    class Halfway(Schedule):
        type: Literal["halfway"] = "halfway"
        value: float = 1.0

        def __call__(self, s, step=0, steps=1):
            return self.value if s >= 0.5 else 0.0

    module = types.ModuleType("halfway_schedule")

    @hookimpl
    def register_schedules(register):
        register(Halfway)

    module.register_schedules = register_schedules
    return module, Halfway


def test_built_in_schedules_resolve_without_plugin_discovery(monkeypatch):
    from diffprior.plugins import registry as plugins

    def no_discovery():
        raise AssertionError("plugins were discovered for a built-in schedule")

    monkeypatch.setattr(plugins, "get_registry", no_discovery)
    assert parse_schedule({"linear": [1, 0], "jitter": 0.5}).jitter == 0.5
    assert parse_schedule({"type": "cosine", "start": 1, "end": 0, "jitter": 1})(1.0) == pytest.approx(0.0)


def test_a_plugin_schedule_is_found_by_discovery_or_in_the_given_registry():
    from diffprior.plugins import registry as plugins
    from diffprior.plugins.registry import PluginSettings, Registration, Registry

    module, Halfway = _halfway_plugin()
    plugins.register_plugin(module, "halfway-schedule")
    try:
        assert parse_schedule({"halfway": [2.0]})(0.7) == 2.0  # no registry given: the installed plugins
    finally:
        plugins.unregister_plugin("halfway-schedule")
    registry = Registry(PluginSettings())
    registry.entries["schedule"]["halfway"] = Registration("schedule", "halfway", Halfway, "test")
    assert parse_schedule({"halfway": [4.0]}, registry=registry)(0.7) == 4.0
    with pytest.raises(ValueError, match="unknown schedule type 'halfway'"):
        parse_schedule({"halfway": [4.0]})  # unregistered again
