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

from diffprior.method import guards
from diffprior.method.clipping import ClipPolicy
from diffprior.errors import NonFiniteError
from diffprior.config.options import OptimizerConfig, Options
from diffprior.method.rng import generators, per_sample_randn, per_sample_uniform
from diffprior.method.schedules import Schedule, as_schedule
from diffprior.method.variables import maps_x_back


@dataclass
class WeightedTerm:
    """A term with its weight schedule λ(s) and clip policy, under a display name.

    ``weight`` may be a number or a :class:`Schedule`; ``clip`` a :class:`ClipPolicy` or
    its short form (``"none"``, ``{"max_norm": 0.1}``, ``{"relative": 0.1}``)."""

    name: str
    term: Any
    weight: Schedule | float = 1.0
    clip: ClipPolicy | str | dict = "none"

    def __post_init__(self):
        self.weight = as_schedule(self.weight)
        self.clip = ClipPolicy.of(self.clip)


@dataclass
class StepState:
    """What a callback receives after each step: ``x`` is the x that step's losses were
    computed at (a copy: later steps never change it), ``t`` the timesteps [B], ``losses``
    the step's per-sample losses by name."""

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
    out_dir: Any = None  # the run directory its files went to (set by diffprior.run)
    outputs: dict = field(default_factory=dict)  # figures the run's components wrote with their files


def _make_optimizer(params: list[torch.Tensor], o: OptimizerConfig) -> torch.optim.Optimizer:
    lr0 = o.lr(0.0, 0, o.steps)
    if o.type == "adam":
        return torch.optim.Adam(params, lr=lr0, betas=o.betas, weight_decay=o.weight_decay)
    if o.type == "adamax":
        return torch.optim.Adamax(params, lr=lr0, betas=o.betas, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=lr0, momentum=o.momentum, weight_decay=o.weight_decay)


def _per_sample(schedule: Schedule, step: int, steps: int, gens, device) -> torch.Tensor:
    value = torch.full((len(gens),), schedule.at_step(step, steps), dtype=torch.float32)
    if schedule.jitter:
        value = value + per_sample_uniform(gens, -schedule.jitter, schedule.jitter)
    return value.to(device)


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
    terms: Sequence[WeightedTerm] = (),
    seeds: Sequence[int] | None = None,
    options: Options | None = None,
    *,
    init_params: torch.Tensor | None = None,
    callbacks: Sequence[Callable[[StepState], None]] = (),
    progress: bool | str = False,
) -> Result:
    """Minimise the free energy for ``len(seeds)`` independent problems at once.

    ``options`` is the run's :class:`Options` (a run config is one); ``seeds`` default to
    ``options.seeds()`` (``seed + i`` for each of ``batch`` samples). ``init_params`` (a
    tensor [B, *param_shape] or [*param_shape]) replaces ``options.init`` when given.
    ``progress``: show a progress bar (a string: its label, default "free energy")."""
    o = _checked_options(options)
    seeds = [int(s) for s in (seeds if seeds is not None else o.seeds())]
    gens = generators(seeds)
    _freeze(prior)
    params = _initial_params(prior, variable, gens, prior.device, o, len(seeds), init_params, terms,
                             bool(progress)).requires_grad_(True)
    loop = _FreeEnergyLoop(prior, variable, terms, params, gens, o)
    history = _History({"prior": []} | {wt.name: [] for wt in terms})
    steps = o.optimizer.steps

    def result(steps_done: int, interrupted: bool, show_progress: bool) -> Result:
        return _result(prior, variable, terms, params, seeds, history, o, gens,
                       steps_done=steps_done, interrupted=interrupted, progress=show_progress)

    bar = _ProgressBar(progress, steps, terms)
    interrupted, step = False, 0
    try:
        for step in range(steps):
            done = loop.step(step, keep_x=bool(callbacks))
            history.record(done, terms)
            if callbacks:
                _notify(callbacks, StepState(step, steps, done.t, done.x, history.latest()))
            bar.update(step, done, terms)
        step = steps
    except KeyboardInterrupt:
        interrupted = True
    except NonFiniteError as exc:
        # the parameters are still those of the last finite step: hand them over with the error
        exc.partial = result(step, True, False)
        raise
    finally:
        bar.close()
    return result(step, interrupted, bool(progress))


def _checked_options(options: Options | None) -> Options:
    o = options if options is not None else Options()
    if not isinstance(o, Options):
        raise TypeError(f"options must be a diffprior.Options (or a run config), got {type(o).__name__}")
    return o


def _freeze(prior) -> None:
    """The prior is fixed: only the variable's parameters are optimised."""
    prior.eval()
    for p in prior.parameters():
        p.requires_grad_(False)


@dataclass
class _StepDone:
    """One step's outcome: the timesteps [B], the x its losses were computed at (a copy, or
    None when nobody looks at it), the prior's ‖ε − ε_θ‖² [B] and each term's −λ·log c [B]."""

    t: torch.Tensor
    x: torch.Tensor | None
    prior_loss: torch.Tensor
    term_losses: list[torch.Tensor]


class _FreeEnergyLoop:
    """One optimisation step of the free energy at a time, in the paper's order: sample t per
    sample, noise x and take the prior's ε-loss, weigh the terms' log c by their schedules,
    step the optimizer. Every random draw comes from the samples' own generators, in this order."""

    def __init__(self, prior, variable, terms: Sequence[WeightedTerm], params: torch.Tensor, gens, o: Options):
        self.variable, self.terms, self.params, self.gens, self.o = variable, terms, params, gens, o
        self.device, self.T, self.steps = prior.device, prior.T, o.optimizer.steps
        self.opt = _make_optimizer([params], o.optimizer)
        self.energy = FreeEnergy(prior, o.gradient, o.noise_samples)
        self.gradient = _Gradient(params, terms)

    def step(self, step: int, keep_x: bool) -> _StepDone:
        s = step / self.steps
        _set_lr(self.opt, self.o.optimizer.lr(s, step, self.steps))
        t = self.timesteps(step)
        x = self.variable.to_x(self.params, s)
        prior_loss, prior_objective = self.energy(x, t, self.gens)
        guards.check_prior_loss(prior_loss, step)
        prior_objective = self.o.prior_weight(s, step, self.steps) * prior_objective
        term_losses = self.term_losses(x, step)
        # Pixels' x is the optimised tensor itself: without a copy, a callback that keeps
        # StepState.x would see it change at every later opt.step()
        x_seen = x.detach().clone() if keep_x else None
        self.descend(prior_objective, term_losses, s, step)
        return _StepDone(t, x_seen, prior_loss.detach(), term_losses)

    def timesteps(self, step: int) -> torch.Tensor:
        """t [B] from the timestep schedule (annealed from large to small), jittered per sample."""
        t = _per_sample(self.o.timesteps, step, self.steps, self.gens, self.device)
        return t.round().clamp(1, self.T - 1).long()

    def term_losses(self, x: torch.Tensor, step: int) -> list[torch.Tensor]:
        """−λ_k·log c_k(x, y) [B] of each term, λ_k read from its schedule at this step."""
        if not self.terms:
            return []
        view = self.variable.term_view(x)
        losses = []
        for wt in self.terms:
            log_c = _checked_log_c(wt, view, len(self.gens))
            weight = _per_sample(wt.weight, step, self.steps, self.gens, self.device)
            loss = -weight * log_c
            guards.check_term_loss(wt.name, loss, step)
            losses.append(loss)
        return losses

    def descend(self, prior_objective: torch.Tensor, term_losses: list[torch.Tensor], s: float, step: int) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.gradient(prior_objective, term_losses, s, step, self.steps)
        guards.check_gradient(self.params.grad, step)
        self.opt.step()


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _checked_log_c(wt: WeightedTerm, view, B: int) -> torch.Tensor:
    log_c = wt.term.log_c(view)
    if log_c.shape != (B,):
        raise ValueError(
            f"term {wt.name!r} returned log c of shape {tuple(log_c.shape)}; expected ({B},): one score per sample"
        )
    return log_c


class _Gradient:
    """Sets ``params.grad`` from a step's objectives: one backward pass through their sum or,
    when a term's clip policy needs that term's own gradient, per-term gradients clipped per
    sample (each term keeps its own clip state across steps)."""

    def __init__(self, params: torch.Tensor, terms: Sequence[WeightedTerm]):
        self.params = params
        self.clippers = [wt.clip.clipper() for wt in terms]
        self.fused = not any(wt.clip.needs_own_gradient for wt in terms)

    def __call__(self, prior_objective, term_losses, s: float, step: int, steps: int) -> None:
        if self.fused:
            total = prior_objective.sum() + sum(l.sum() for l in term_losses)
            if total.requires_grad:
                total.backward()
        else:
            self.params.grad = _clipped_gradient(self.params, prior_objective, term_losses, self.clippers, s, step, steps)


def _notify(callbacks: Sequence[Callable[[StepState], None]], state: StepState) -> None:
    for cb in callbacks:
        cb(state)


class _ProgressBar:
    """The run's progress bar (nothing when ``progress`` is false), with t and the losses of
    every tenth step beside it."""

    def __init__(self, progress: bool | str, steps: int, terms: Sequence[WeightedTerm]):
        self.bar, self.steps = None, steps
        if progress:
            from tqdm.auto import tqdm

            label = progress if isinstance(progress, str) else "free energy"
            self.bar = tqdm(total=steps, desc=label, unit="step", dynamic_ncols=True)

    def update(self, step: int, done: _StepDone, terms: Sequence[WeightedTerm]) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if step % 10 == 0 or step == self.steps - 1:
            self.bar.set_postfix({"t": int(done.t.float().mean()), "prior": f"{float(done.prior_loss.mean()):.4f}"}
                                 | {wt.name: f"{float(l.detach().mean()):.3g}" for wt, l in zip(terms, done.term_losses)})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class _History:
    """Per-step losses by name and timesteps, each entry of shape [B]."""

    losses: dict[str, list[torch.Tensor]]
    timesteps: list[torch.Tensor] = field(default_factory=list)

    def record(self, done: _StepDone, terms: Sequence[WeightedTerm]) -> None:
        self.losses["prior"].append(done.prior_loss.cpu())
        for wt, loss in zip(terms, done.term_losses):
            self.losses[wt.name].append(loss.detach().cpu())
        self.timesteps.append(done.t.cpu())

    def latest(self) -> dict[str, torch.Tensor]:
        return {k: v[-1] for k, v in self.losses.items()}


def _result(prior, variable, terms, params, seeds, history: _History, o: Options, gens, *,
            steps_done: int, interrupted: bool, progress: bool) -> Result:
    with torch.no_grad():
        x_opt = variable.to_x(params.detach(), 1.0)
        x = x_opt
        if o.denoise is not None and not interrupted:
            d = o.denoise
            x = prior.denoise(x_opt, d.from_t, d.steps, d.method, generators=gens, progress=progress)
        metrics = {} if interrupted and steps_done == 0 else _safe_metrics(variable, terms, x)
    stack = lambda seq: torch.stack(seq) if seq else torch.zeros(0, len(seeds))
    return Result(
        x=x.detach(),
        x_optimized=x_opt.detach(),
        params=params.detach(),
        seeds=seeds,
        losses={k: stack(v) for k, v in history.losses.items()},
        timesteps=stack(history.timesteps),
        metrics=metrics,
        steps_done=steps_done,
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


def load_init_file(path) -> torch.Tensor:
    """The 'params' (or 'x') tensor of a safetensors file: the start of ``init.type = "file"``."""
    from diffprior.errors import ConfigError
    from diffprior.tensorfiles import load_tensors

    tensors = load_tensors(path, what="init.path")
    key = "params" if "params" in tensors else "x" if "x" in tensors else None
    if key is None:
        raise ConfigError(f"init.path: {path} has neither a 'params' nor an 'x' tensor")
    return tensors[key]


def _initial_params(prior, variable, gens, device, o: Options, B: int, init_params=None, terms=(),
                    progress: bool = False) -> torch.Tensor:
    shape = tuple(variable.param_shape)
    init = o.init
    if init_params is not None or init.type == "file":
        given = init_params if init_params is not None else load_init_file(init.path)
        params = torch.as_tensor(given, dtype=torch.float32, device=device)
        if params.shape == shape:
            params = params.expand(B, *shape)
        if tuple(params.shape) != (B, *shape):
            raise ValueError(f"initial parameters have shape {tuple(params.shape)}; expected {(B, *shape)} or {shape}")
    elif init.type == "variable":
        params = variable.init(gens, device)
    elif init.type == "noise":
        params = init.scale * per_sample_randn(gens, shape, torch.empty(0, device=device))
    elif init.type == "prior":
        if not maps_x_back(variable):  # refuse before spending the prior's sampling steps
            from diffprior.errors import ConfigError

            raise ConfigError(f"init: type 'prior' needs a variable that maps x back to its parameters: "
                              f"{type(variable).__name__} does not define params_from_x")
        params = variable.params_from_x(best_prior_sample(prior, variable, terms, gens, init, o.optimizer.steps, progress))
    else:  # zeros
        params = torch.zeros(B, *shape, device=device)
    return params.detach().clone().float()


def prior_sample(prior, gens, steps: int, method: str = "ddim") -> torch.Tensor:
    """One unconditional sample of ``prior`` per generator: pure noise at t = T − 1 drawn
    from the sample's own generator, denoised to t = 0 in ``steps`` steps."""
    noise = per_sample_randn(gens, prior.shape, torch.empty(0, device=prior.device))
    return prior.denoise(noise, prior.T - 1, steps=steps, method=method, generators=gens, add_noise=False)


@torch.no_grad()
def best_prior_sample(prior, variable, terms: Sequence[WeightedTerm], gens, init, run_steps: int,
                      progress: bool = False) -> torch.Tensor:
    """Per sample, ``init.candidates`` unconditional samples drawn one after another from the
    sample's own generator (the first is :func:`prior_sample`'s); the one with the highest
    Σ λ(0)·log c over ``terms`` is kept (the first on ties, and always without terms).
    ``run_steps``: the optimisation's step count, which the weight schedules are read against."""
    best = prior_sample(prior, gens, init.steps, init.method)
    if init.candidates == 1 or not terms:
        return best
    from tqdm.auto import tqdm

    # N candidates can cost as much as the run itself: they get their own bar
    with tqdm(total=init.candidates, initial=1, desc="prior start candidates", unit="draw",
              dynamic_ncols=True, disable=not progress) as bar:
        best_score = start_score(variable, terms, best, run_steps)
        for _ in range(init.candidates - 1):
            x = prior_sample(prior, gens, init.steps, init.method)
            score = start_score(variable, terms, x, run_steps)
            better = score > best_score
            best = torch.where(better.view(-1, *[1] * (x.ndim - 1)), x, best)
            best_score = torch.where(better, score, best_score)
            bar.update()
    return best


def start_score(variable, terms: Sequence[WeightedTerm], x: torch.Tensor, run_steps: int) -> torch.Tensor:
    """Σ λ(0)·log c of each sample in ``x`` [B, ...]: how well a start meets the constraints.
    λ(0) is read without the per-sample jitter the run draws, so scoring consumes no random numbers."""
    view = variable.term_view(x)
    return sum(wt.weight.at_step(0, run_steps) * wt.term.log_c(view).float() for wt in terms)


def _clipped_gradient(params, prior_objective, term_losses, clippers, s, step, steps) -> torch.Tensor:
    """Per-term gradients, each clipped per sample by its term's clipper; only used when a
    clip policy needs them."""
    n = len(term_losses)
    if prior_objective.requires_grad:
        (g_prior,) = torch.autograd.grad(prior_objective.sum(), params, retain_graph=n > 0)
    else:
        g_prior = torch.zeros_like(params)
    prior_norm = g_prior.flatten(1).norm(dim=1)
    total = g_prior.clone()
    for k, (clip, loss) in enumerate(zip(clippers, term_losses)):
        if not loss.requires_grad:
            continue
        (g,) = torch.autograd.grad(loss.sum(), params, retain_graph=k < n - 1, allow_unused=True)
        if g is None:
            continue
        total = total + clip(g, prior_norm, s, step, steps)
    return total
