"""The free-energy loop.

F(η) = Σ_t w(t)·E_ε‖ε − ε_θ(√ᾱ_t x + √(1−ᾱ_t) ε, t)‖² − Σ_k λ_k·log c_k(x, y),  x = variable(η),

minimised over η with one t per sample and step (annealed from large to small) and
``noise_samples`` ε draws. Every sum over the batch is a sum of per-sample quantities and
every random draw comes from the sample's own generator, so a batch of B problems equals
B runs of one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from .config import ClipPolicy
from .rng import generators, per_sample_randn, per_sample_uniform
from .schedules import Constant, CosineLinear, Schedule


class NonFiniteError(FloatingPointError):
    """A loss or the gradient became NaN/inf; the message names the term, step and samples.

    ``partial`` holds the :class:`Result` of the steps before it (set by :func:`optimize`)."""

    partial: "Result | None" = None


def as_schedule(value: float | Schedule) -> Schedule:
    return value if isinstance(value, Schedule) else Constant(value=float(value))


@dataclass
class WeightedTerm:
    """A term with its weight schedule λ(s) and clip policy, under a display name."""

    name: str
    term: Any
    weight: Schedule | float = 1.0
    clip: ClipPolicy = field(default_factory=ClipPolicy)

    def __post_init__(self):
        self.weight = as_schedule(self.weight)
        if isinstance(self.clip, dict) or isinstance(self.clip, str):
            self.clip = ClipPolicy.model_validate(ClipPolicy.parse(self.clip))
        if self.clip.value is not None:
            self.clip.value = as_schedule(self.clip.value)


@dataclass
class RunOptions:
    steps: int = 1000
    optimizer: str = "adam"
    lr: Schedule | float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0
    weight_decay: float = 0.0
    timesteps: Schedule | float = field(default_factory=CosineLinear)
    prior_weight: Schedule | float = 1.0
    gradient: str = "full"
    noise_samples: int = 1
    init: str = "variable"  # variable | noise | zeros | tensor
    init_scale: float = 1.0
    init_tensor: torch.Tensor | None = None
    denoise_from: int | None = None
    denoise_steps: int | None = None
    denoise_method: str = "ddpm"

    def __post_init__(self):
        if self.gradient not in ("full", "sds"):
            raise ValueError(f"gradient must be 'full' or 'sds', got {self.gradient!r}")
        if self.steps <= 0:
            raise ValueError("steps must be positive")
        self.lr = as_schedule(self.lr)
        self.timesteps = as_schedule(self.timesteps)
        self.prior_weight = as_schedule(self.prior_weight)


@dataclass
class StepState:
    step: int
    steps: int
    t: torch.Tensor
    x: torch.Tensor
    losses: dict[str, torch.Tensor]


@dataclass
class Result:
    """What a run produced. ``losses[name]`` is [steps, B]: 'prior' is ‖ε − ε_θ‖², each term's
    entry is −λ·log c; ``metrics[name]`` holds final per-sample figures (log c of each term
    at the returned x, plus what terms report)."""

    x: torch.Tensor
    x_optimized: torch.Tensor
    params: torch.Tensor
    seeds: list[int]
    losses: dict[str, torch.Tensor]
    timesteps: torch.Tensor
    metrics: dict[str, torch.Tensor]
    steps_done: int
    interrupted: bool = False


def _make_optimizer(name: str, params: list[torch.Tensor], o: RunOptions) -> torch.optim.Optimizer:
    lr0 = o.lr(0.0, 0, o.steps)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr0, betas=o.betas, weight_decay=o.weight_decay)
    if name == "adamax":
        return torch.optim.Adamax(params, lr=lr0, betas=o.betas, weight_decay=o.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr0, momentum=o.momentum, weight_decay=o.weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: use 'adam', 'adamax' or 'sgd'")


def _per_sample(schedule: Schedule, step: int, steps: int, gens, device) -> torch.Tensor:
    value = torch.full((len(gens),), schedule.at_step(step, steps), dtype=torch.float32)
    if schedule.jitter:
        value = value + per_sample_uniform(gens, -schedule.jitter, schedule.jitter)
    return value.to(device)


def _norms(g: torch.Tensor) -> torch.Tensor:
    return g.flatten(1).norm(dim=1)


def _check_finite(name: str, value: torch.Tensor, step: int, hint: str) -> None:
    bad = ~torch.isfinite(value.detach())
    if bad.any():
        samples = bad.flatten(1).any(1).nonzero().flatten().tolist() if value.ndim > 1 else bad.nonzero().flatten().tolist()
        raise NonFiniteError(f"{name} is not finite at step {step} (samples {samples}): {hint}")


class FreeEnergy:
    """The prior term of the free energy for one step: ‖ε − ε_θ(x_t, t)‖² per sample."""

    def __init__(self, prior, gradient: str, noise_samples: int):
        self.prior = prior
        self.gradient = gradient
        self.noise_samples = noise_samples
        self.dims = math.prod(prior.shape)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, gens) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (loss value [B], objective [B] whose gradient is the prior's gradient)."""
        n, B = self.noise_samples, x.shape[0]
        eps = torch.cat([per_sample_randn(gens, self.prior.shape, x) for _ in range(n)])
        xs = x.repeat(n, *([1] * (x.ndim - 1)))
        ts = t.repeat(n)
        a = self.prior.noise.alpha_bar(ts, xs)
        if self.gradient == "full":
            x_t = a.sqrt() * xs + (1 - a).sqrt() * eps
            err = (eps - self.prior.eps(x_t, ts)).pow(2).flatten(1).mean(1)
            loss = err.view(n, B).mean(0)
            return loss, loss
        with torch.no_grad():
            x_t = a.sqrt() * xs.detach() + (1 - a).sqrt() * eps
            eps_hat = self.prior.eps(x_t, ts)
            loss = (eps - eps_hat).pow(2).flatten(1).mean(1).view(n, B).mean(0)
            # the full gradient with the U-Net Jacobian replaced by the identity
            grad = (2.0 / self.dims) * a.sqrt() * (eps_hat - eps)
            grad = grad.view(n, B, *x.shape[1:]).mean(0)
        return loss, (grad * x).flatten(1).sum(1)


def optimize(
    prior,
    variable,
    terms: Sequence[WeightedTerm],
    seeds: Sequence[int],
    options: RunOptions | None = None,
    *,
    callbacks: Sequence[Callable[[StepState], None]] = (),
    progress: bool = False,
) -> Result:
    """Minimise the free energy for ``len(seeds)`` independent problems at once."""
    o = options or RunOptions()
    seeds = [int(s) for s in seeds]
    gens = generators(seeds)
    device = prior.device
    B, steps, T = len(seeds), o.steps, prior.T
    prior.eval()
    for p in prior.parameters():
        p.requires_grad_(False)

    params = _initial_params(variable, gens, device, o, B).requires_grad_(True)
    opt = _make_optimizer(o.optimizer, [params], o)
    energy = FreeEnergy(prior, o.gradient, o.noise_samples)
    fused = not any(wt.clip.needs_own_gradient for wt in terms)
    ema: dict[int, torch.Tensor] = {}
    history: dict[str, list[torch.Tensor]] = {"prior": []} | {wt.name: [] for wt in terms}
    t_history: list[torch.Tensor] = []
    interrupted, step = False, 0

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="free energy", unit="step", dynamic_ncols=True)
    try:
        for step in range(steps):
            s = step / steps
            lr = o.lr(s, step, steps)
            for group in opt.param_groups:
                group["lr"] = lr
            t = _per_sample(o.timesteps, step, steps, gens, device).round().clamp(1, T - 1).long()
            x = variable.to_x(params, s)
            prior_loss, prior_objective = energy(x, t, gens)
            _check_finite("the prior term", prior_loss, step, "check the prior and the variable's output")
            pw = o.prior_weight(s, step, steps)
            prior_objective = pw * prior_objective

            term_losses = []
            if terms:
                view = variable.term_view(x)
                for wt in terms:
                    log_c = wt.term.log_c(view)
                    if log_c.shape != (B,):
                        raise ValueError(
                            f"term {wt.name!r} returned log c of shape {tuple(log_c.shape)}; expected ({B},): one score per sample"
                        )
                    weight = _per_sample(wt.weight, step, steps, gens, device)
                    loss = -weight * log_c
                    _check_finite(f"term {wt.name!r}", loss, step, "lower its weight, clip its gradient or check its inputs")
                    term_losses.append(loss)

            opt.zero_grad(set_to_none=True)
            if fused:
                total = prior_objective.sum() + sum(l.sum() for l in term_losses)
                if total.requires_grad:
                    total.backward()
            else:
                params.grad = _clipped_gradient(params, prior_objective, term_losses, terms, ema, s, step, steps)
            if params.grad is not None:
                _check_finite("the gradient", params.grad, step, "lower the learning rate or a term's weight")
            opt.step()

            prior_loss = prior_loss.detach()
            history["prior"].append(prior_loss.cpu())
            for wt, loss in zip(terms, term_losses):
                history[wt.name].append(loss.detach().cpu())
            t_history.append(t.cpu())
            if callbacks:
                state = StepState(step, steps, t, x.detach(), {k: v[-1] for k, v in history.items()})
                for cb in callbacks:
                    cb(state)
            if bar is not None:
                bar.update(1)
                if step % 10 == 0 or step == steps - 1:
                    bar.set_postfix({"t": int(t.float().mean()), "prior": f"{float(prior_loss.mean()):.4f}"}
                                    | {wt.name: f"{float(l.detach().mean()):.3g}" for wt, l in zip(terms, term_losses)})
        step = steps
    except KeyboardInterrupt:
        interrupted = True
    except NonFiniteError as exc:
        # the parameters are still those of the last finite step: hand them over with the error
        exc.partial = _result(prior, variable, terms, params, seeds, history, t_history, step, True, o, gens, False)
        raise
    finally:
        if bar is not None:
            bar.close()
    return _result(prior, variable, terms, params, seeds, history, t_history, step, interrupted, o, gens, progress)


def _result(prior, variable, terms, params, seeds, history, t_history, step, interrupted, o, gens, progress) -> Result:
    with torch.no_grad():
        x_opt = variable.to_x(params.detach(), 1.0)
        x = x_opt
        if o.denoise_from and not interrupted:
            x = prior.denoise(x_opt, o.denoise_from, o.denoise_steps, o.denoise_method, generators=gens, progress=progress)
        metrics = {} if interrupted and step == 0 else _safe_metrics(variable, terms, x)
    stack = lambda seq: torch.stack(seq) if seq else torch.zeros(0, len(seeds))
    return Result(
        x=x.detach(),
        x_optimized=x_opt.detach(),
        params=params.detach(),
        seeds=seeds,
        losses={k: stack(v) for k, v in history.items()},
        timesteps=stack(t_history),
        metrics=metrics,
        steps_done=step,
        interrupted=interrupted,
    )


def _safe_metrics(variable, terms, x) -> dict[str, torch.Tensor]:
    try:
        return final_metrics(variable, terms, x)
    except Exception:  # a partial result is still worth writing without its metrics
        return {}


def final_metrics(variable, terms: Sequence[WeightedTerm], x: torch.Tensor) -> dict[str, torch.Tensor]:
    metrics = {}
    view = variable.term_view(x)
    for wt in terms:
        metrics[f"{wt.name}.log_c"] = wt.term.log_c(view).detach().cpu()
        for key, value in wt.term.metrics(view).items():
            metrics[f"{wt.name}.{key}"] = value.detach().cpu()
    return metrics


def _initial_params(variable, gens, device, o: RunOptions, B: int) -> torch.Tensor:
    shape = tuple(variable.param_shape)
    if o.init == "variable":
        params = variable.init(gens, device)
    elif o.init == "noise":
        params = o.init_scale * per_sample_randn(gens, shape, torch.empty(0, device=device))
    elif o.init == "zeros":
        params = torch.zeros(B, *shape, device=device)
    elif o.init == "tensor":
        params = torch.as_tensor(o.init_tensor, dtype=torch.float32, device=device)
        if params.shape == shape:
            params = params.expand(B, *shape)
        if tuple(params.shape) != (B, *shape):
            raise ValueError(f"initial parameters have shape {tuple(params.shape)}; expected {(B, *shape)} or {shape}")
    else:
        raise ValueError(f"unknown init {o.init!r}: use 'variable', 'noise', 'zeros' or 'tensor'")
    return params.detach().clone().float()


def _clipped_gradient(params, prior_objective, term_losses, terms, ema, s, step, steps) -> torch.Tensor:
    """Per-term gradients, each clipped per sample; only used when a clip policy needs them."""
    n = len(term_losses)
    if prior_objective.requires_grad:
        (g_prior,) = torch.autograd.grad(prior_objective.sum(), params, retain_graph=n > 0)
    else:
        g_prior = torch.zeros_like(params)
    prior_norm = _norms(g_prior)
    total = g_prior.clone()
    for k, (wt, loss) in enumerate(zip(terms, term_losses)):
        if not loss.requires_grad:
            continue
        (g,) = torch.autograd.grad(loss.sum(), params, retain_graph=k < n - 1, allow_unused=True)
        if g is None:
            continue
        policy = wt.clip
        if policy.mode != "none":
            if policy.mode == "max_norm":
                limit = torch.full_like(prior_norm, policy.value(s, step, steps))
            else:  # relative to an EMA of the prior-gradient norm, per sample
                prev = ema.get(k)
                ema[k] = prior_norm if prev is None else policy.ema * prev + (1 - policy.ema) * prior_norm
                limit = policy.value(s, step, steps) * ema[k]
            factor = (limit / _norms(g).clamp_min(1e-12)).clamp(max=1.0)
            g = g * factor.view(-1, *([1] * (g.ndim - 1)))
        total = total + g
    return total
