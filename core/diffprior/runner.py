"""From a validated run config to a result and an output folder."""

from __future__ import annotations

import time
from pathlib import Path

from .config import BuildContext, ConfigError


def _term_names(configs) -> list[str]:
    names, seen = [], {}
    for cfg in configs:
        base = cfg.name or cfg.type
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    if len(set(names)) != len(names) or "prior" in names:
        raise ConfigError("terms: term names must be unique and not 'prior'; set name = '...' on each")
    return names


def build(config, *, device: str | None = None):
    """Build (prior, variable, weighted terms, options) from a run config."""
    import torch

    from .optimizer import RunOptions, WeightedTerm

    device = device or config.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} was asked for, but torch sees no CUDA device; use --device cpu")
    ctx = BuildContext(device=device, steps=config.optimizer.steps)
    ctx.prior = config.prior.build(ctx)
    variable = config.variable.build(ctx)
    terms = [
        WeightedTerm(name, cfg.build(ctx), cfg.resolved_weight(), cfg.resolved_clip())
        for name, cfg in zip(_term_names(config.terms), config.terms)
    ]
    opt = config.optimizer
    init_tensor = None
    if config.init.type == "file":
        from safetensors.torch import load_file

        tensors = load_file(str(config.init.path))
        key = "params" if "params" in tensors else "x" if "x" in tensors else None
        if key is None:
            raise ConfigError(f"init.path: {config.init.path} has neither a 'params' nor an 'x' tensor")
        init_tensor = tensors[key]
    options = RunOptions(
        steps=opt.steps,
        optimizer=opt.type,
        lr=opt.lr,
        betas=opt.betas,
        momentum=opt.momentum,
        weight_decay=opt.weight_decay,
        timesteps=config.timesteps,
        prior_weight=config.prior_weight,
        gradient=config.gradient,
        noise_samples=config.noise_samples,
        init="tensor" if init_tensor is not None else config.init.type,
        init_scale=config.init.scale,
        init_tensor=init_tensor,
        denoise_from=config.denoise.from_t if config.denoise else None,
        denoise_steps=config.denoise.steps if config.denoise else None,
        denoise_method=config.denoise.method if config.denoise else "ddpm",
    )
    return ctx.prior, variable, terms, options


def run(config, out_dir: Path | None = None, *, seeds=None, device: str | None = None, progress: bool = True):
    """Run a config; write its outputs to ``out_dir`` when given. Returns the Result."""
    from .optimizer import optimize

    prior, variable, terms, options = build(config, device=device)
    seeds = list(seeds) if seeds is not None else [config.seed + i for i in range(config.batch)]
    from .optimizer import NonFiniteError
    from .outputs import write_run

    start = time.perf_counter()
    try:
        result = optimize(prior, variable, terms, seeds, options, progress=progress)
    except NonFiniteError as exc:
        if out_dir is not None and exc.partial is not None:  # keep what was done before the failure
            write_run(Path(out_dir), config, exc.partial, prior, elapsed=time.perf_counter() - start)
            exc.args = (f"{exc.args[0]}\npartial results of the {exc.partial.steps_done} steps before it: {out_dir}/",)
        raise
    if out_dir is not None:
        write_run(Path(out_dir), config, result, prior, elapsed=time.perf_counter() - start)
    return result
