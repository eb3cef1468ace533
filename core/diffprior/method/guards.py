"""The optimizer's non-finite guards: a NaN or inf stops the run at the step it appears in,
naming the quantity, the samples it hit and what to change."""

from __future__ import annotations

import torch

from diffprior.errors import NonFiniteError


def check_finite(name: str, value: torch.Tensor, step: int, hint: str) -> None:
    bad = ~torch.isfinite(value.detach())
    if bad.any():
        samples = bad.flatten(1).any(1).nonzero().flatten().tolist() if value.ndim > 1 else bad.nonzero().flatten().tolist()
        raise NonFiniteError(f"{name} is not finite at step {step} (samples {samples}): {hint}")


def check_prior_loss(loss: torch.Tensor, step: int) -> None:
    check_finite("the prior term", loss, step, "check the prior and the variable's output")


def check_term_loss(name: str, loss: torch.Tensor, step: int) -> None:
    check_finite(f"term {name!r}", loss, step, "lower its weight, clip its gradient or check its inputs")


def check_gradient(grad: torch.Tensor | None, step: int) -> None:
    if grad is not None:
        check_finite("the gradient", grad, step, "lower the learning rate or a term's weight")
