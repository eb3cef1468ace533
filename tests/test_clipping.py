"""Clip policies against their definition (clipping.py's table), computed by hand.

Per sample i the term's gradient g_i is scaled by min(1, limit_i / ‖g_i‖): ``max_norm v`` has
limit v(s); ``relative r`` has limit r(s)·EMA of the prior-gradient norm, EMA_0 = ‖∇prior‖_0,
EMA_k = e·EMA_{k−1} + (1 − e)·‖∇prior‖_k.
"""

from typing import Literal

import pytest
import torch

from diffprior import ClipPolicy
from diffprior.method.clipping import Clipper, MaxNorm, RelativeToPrior
from diffprior.method.schedules import Constant, Linear, Schedule

# two samples: gradient norms 5 (a 3-4-0-0 picture) and 0.5
GRAD = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.3, 0.0, 0.4, 0.0]]).view(2, 1, 2, 2)


@pytest.mark.parametrize("short, mode, value, ema", [
    (None, "none", None, 0.5),
    ("none", "none", None, 0.5),
    ({"max_norm": 0.5}, "max_norm", 0.5, 0.5),
    ({"relative": 0.1, "ema": 0.9}, "relative", 0.1, 0.9),
    ({"mode": "relative", "value": 2.0}, "relative", 2.0, 0.5),
])
def test_short_and_long_forms(short, mode, value, ema):
    policy = ClipPolicy.of(short)
    assert policy.mode == mode and policy.ema == ema
    assert (policy.value is None) if value is None else policy.value == Constant(value=value)
    assert policy.needs_own_gradient == (mode != "none")
    assert ClipPolicy.of(policy) is policy


def test_a_table_without_a_mode_names_the_forms():
    with pytest.raises(ValueError, match=r"^a clip policy is 'none', \{max_norm = V\} or \{relative = R, ema = 0.5\}$"):
        ClipPolicy.parse({"maxnorm": 1})


def test_each_policy_gets_its_own_fresh_clipper():
    assert type(ClipPolicy.of("none").clipper()) is Clipper
    assert type(ClipPolicy.of({"max_norm": 1}).clipper()) is MaxNorm
    relative = ClipPolicy.of({"relative": 1})
    first, second = relative.clipper(), relative.clipper()
    assert type(first) is RelativeToPrior and first is not second
    first(GRAD, torch.tensor([1.0, 1.0]), 0.0, 0, 10)
    assert second.prior_norm_ema is None  # state is never shared


def test_none_returns_the_gradient_as_it_is():
    assert torch.equal(ClipPolicy.of("none").clipper()(GRAD, torch.tensor([0.1, 0.1]), 0.5, 5, 10), GRAD)


def test_max_norm_cuts_each_sample_to_the_bound_and_leaves_smaller_ones():
    clipped = ClipPolicy.of({"max_norm": 1.0}).clipper()(GRAD, torch.tensor([9.0, 9.0]), 0.0, 0, 10)
    expected = torch.tensor([[0.6, 0.8, 0.0, 0.0], [0.3, 0.0, 0.4, 0.0]]).view(2, 1, 2, 2)
    torch.testing.assert_close(clipped, expected)


def test_max_norm_schedule_is_read_at_the_current_progress():
    policy = ClipPolicy(mode="max_norm", value=Linear(start=2.0, end=0.0))
    clipped = policy.clipper()(GRAD, torch.tensor([1.0, 1.0]), 0.75, 75, 100)  # bound 0.5
    norms = clipped.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(clipped[0] / norms[0], GRAD[0] / 5.0)  # the direction is kept


def test_a_zero_gradient_stays_zero():
    zero = torch.zeros(2, 3)
    assert torch.equal(ClipPolicy.of({"max_norm": 1.0}).clipper()(zero, torch.ones(2), 0.0, 0, 1), zero)


def test_relative_follows_an_ema_of_the_prior_norm_per_sample():
    clipper = ClipPolicy.of({"relative": 0.5, "ema": 0.25}).clipper()
    big = GRAD * 100  # norms 500 and 50: always cut
    # step 0: EMA = ‖∇prior‖ as it is → limits 0.5·[2, 4] = [1, 2]
    out = clipper(big, torch.tensor([2.0, 4.0]), 0.0, 0, 3)
    torch.testing.assert_close(out.flatten(1).norm(dim=1), torch.tensor([1.0, 2.0]))
    # step 1: EMA = 0.25·[2, 4] + 0.75·[6, 0] = [5, 1] → limits [2.5, 0.5]
    out = clipper(big, torch.tensor([6.0, 0.0]), 1 / 3, 1, 3)
    torch.testing.assert_close(out.flatten(1).norm(dim=1), torch.tensor([2.5, 0.5]))
    torch.testing.assert_close(clipper.prior_norm_ema, torch.tensor([5.0, 1.0]))


class StepsLeft(Schedule):
    """A schedule that reads the step index and the number of steps, as a plugin's may."""

    type: Literal["steps-left"] = "steps-left"

    def __call__(self, s, step=0, steps=1):
        return float(steps - step)


def test_clip_schedules_receive_the_step_and_the_number_of_steps():
    max_norm = ClipPolicy(mode="max_norm", value=StepsLeft()).clipper()
    out = max_norm(GRAD * 10, torch.tensor([1.0, 1.0]), 0.7, 7, 10)  # bound 10 − 7 = 3
    torch.testing.assert_close(out.flatten(1).norm(dim=1), torch.tensor([3.0, 3.0]))
    relative = ClipPolicy(mode="relative", value=StepsLeft()).clipper()
    out = relative(GRAD * 10, torch.tensor([1.0, 0.5]), 0.8, 8, 10)  # ratio 10 − 8 = 2 of the prior's norm
    torch.testing.assert_close(out.flatten(1).norm(dim=1), torch.tensor([2.0, 1.0]))
