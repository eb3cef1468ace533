"""From a validated run config to a result and an output folder.

The run config *is* the run's :class:`~diffprior.Options`: it goes to :func:`optimize`
unchanged. ``build`` turns its prior, variable and terms into objects, handing each
``build`` a :class:`BuildContext` with the device, batch, seeds and config folder.
"""

from __future__ import annotations

import time
from pathlib import Path

from .bases import BuildContext
from .errors import ConfigError


def _term_names(configs) -> list[str]:
    names, seen = [], {}
    for cfg in configs:
        base = cfg.name or cfg.type
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    if len(set(names)) != len(names) or "prior" in names:
        raise ConfigError("terms: term names must be unique and not 'prior'; set name = '...' on each")
    return names


def build(config, *, seeds=None, base_dir: Path | None = None):
    """Build (prior, variable, weighted terms, options) from a run config.

    ``options`` is ``config`` itself. ``seeds`` (default ``config.seeds()``) and
    ``base_dir`` (default: the folder of the file the config was loaded from) go to every
    ``build`` through the :class:`BuildContext`."""
    import torch

    from .optimizer import WeightedTerm

    device = config.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} was asked for, but torch sees no CUDA device; use --device cpu")
    seeds = [int(s) for s in (seeds if seeds is not None else config.seeds())]
    base_dir = base_dir if base_dir is not None else getattr(config, "base_dir", None)
    ctx = BuildContext(device=device, steps=config.optimizer.steps, base_dir=base_dir, seeds=seeds)
    ctx.prior = config.prior.build(ctx)
    variable = config.variable.build(ctx)
    terms = [
        WeightedTerm(name, cfg.build(ctx), cfg.resolved_weight(), cfg.resolved_clip())
        for name, cfg in zip(_term_names(config.terms), config.terms)
    ]
    return ctx.prior, variable, terms, config


def run(config, out_dir: Path | None = None, *, seeds=None, progress: bool = True):
    """Run a config; write its outputs to ``out_dir`` when given. Returns the Result.

    ``seeds`` replaces the config's ``seed``/``batch`` (sample i gets ``seeds[i]``)."""
    from .errors import NonFiniteError
    from .optimizer import optimize
    from .outputs import write_run

    seeds = [int(s) for s in (seeds if seeds is not None else config.seeds())]
    prior, variable, terms, options = build(config, seeds=seeds)
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
