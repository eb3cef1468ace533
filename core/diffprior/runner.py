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

    from .checks import check_run, memory_problem

    problems = check_run(config)  # a config made in Python has not been through validate_config
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else "\n  " + "\n  ".join(problems))
    device = config.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} was asked for, but torch sees no CUDA device; use --device cpu")
    seeds = [int(s) for s in (seeds if seeds is not None else config.seeds())]
    base_dir = base_dir if base_dir is not None else getattr(config, "base_dir", None)
    ctx = BuildContext(device=device, steps=config.optimizer.steps, base_dir=base_dir, seeds=seeds)
    ctx.prior = config.prior.build(ctx)
    problem = memory_problem(len(seeds), tuple(ctx.prior.shape))
    if problem:
        raise ConfigError(problem)
    variable = config.variable.build(ctx)
    terms = [
        WeightedTerm(name, cfg.build(ctx), cfg.resolved_weight(), cfg.resolved_clip())
        for name, cfg in zip(_term_names(config.terms), config.terms)
    ]
    return ctx.prior, variable, terms, config


def run(config, out_dir: Path | None = None, *, seeds=None, progress: bool = True, overwrite: bool = False,
        on_start=None):
    """Run a config; write its outputs to ``out_dir`` when given. Returns the Result.

    ``seeds`` replaces the config's ``seed``/``batch`` (sample i gets ``seeds[i]``).
    ``out_dir`` is claimed before anything is built: when it already holds something, the
    run goes to ``out_dir-1`` (``-2``, ...) unless ``overwrite``; ``result.out_dir`` says
    where. ``on_start(path)`` is called with the claimed directory.
    """
    from contextlib import nullcontext

    from .errors import NonFiniteError
    from .optimizer import optimize
    from .rundir import RunDir

    run_dir = RunDir.claim(out_dir, overwrite=overwrite) if out_dir is not None else None
    with run_dir or nullcontext():
        if run_dir is not None and on_start is not None:
            on_start(run_dir.path)
        seeds = [int(s) for s in (seeds if seeds is not None else config.seeds())]
        prior, variable, terms, options = build(config, seeds=seeds)
        start = time.perf_counter()
        try:
            result = optimize(prior, variable, terms, seeds, options, progress=progress)
        except NonFiniteError as exc:
            if run_dir is not None and exc.partial is not None:  # keep what was done before the failure
                _write(run_dir, config, exc.partial, prior, time.perf_counter() - start, "failed")
                exc.args = (f"{exc.args[0]}\npartial results of the {exc.partial.steps_done} steps before it: "
                            f"{run_dir.path}/",)
            raise
        if run_dir is not None:
            _write(run_dir, config, result, prior, time.perf_counter() - start, None)
            result.out_dir = run_dir.path
    return result


def _write(run_dir, config, result, prior, elapsed, status) -> None:
    """Write the run's files; Ctrl-C meanwhile is held until they are complete, then said."""
    import sys

    from .outputs import write_run
    from .rundir import deferred_interrupts

    def message():
        return f"still writing the results to {run_dir.path}/; they will be complete in a moment"

    with deferred_interrupts(message) as presses:
        write_run(run_dir, config, result, prior, elapsed=elapsed, status=status)
    if presses:
        kept = ", ".join(run_dir.written)
        print(f"kept {run_dir.path}/ complete ({result.steps_done} steps): {kept}", file=sys.stderr)
