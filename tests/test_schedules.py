import math

import pytest

from diffprior.config import ConfigError, parse_schedule
from diffprior.schedules import Constant, Cosine, CosineLinear, Exponential, Linear, Piecewise


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
