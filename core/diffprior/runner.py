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


def build(config, *, seeds=None, base_dir: Path | None = None, indices=None):
    """Build (prior, variable, weighted terms, options) from a run config.

    ``options`` is ``config`` itself. ``seeds`` (default ``config.seeds()``) and
    ``base_dir`` (default: the folder of the file the config was loaded from) go to every
    ``build`` through the :class:`BuildContext`, with ``indices`` (which samples of the whole
    run these seeds are; default 0..len(seeds)-1)."""
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
    ctx = BuildContext(device=device, steps=config.optimizer.steps, base_dir=base_dir, seeds=seeds, indices=indices)
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
        on_start=None, shard=None):
    """Run a config; write its outputs to ``out_dir`` when given. Returns the Result.

    ``seeds`` replaces the config's ``seed``/``batch`` (sample i gets ``seeds[i]``).
    ``out_dir`` is claimed before anything is built: when it already holds something, the
    run goes to ``out_dir-1`` (``-2``, ...) unless ``overwrite``; ``result.out_dir`` says
    where. ``on_start(path)`` is called with the claimed directory.

    ``shard`` (a :class:`~diffprior.sharding.Shard`) solves only that contiguous part of the
    samples and writes a partial output (``diffprior merge`` joins them). Under ``torchrun``
    each rank solves its part of those samples on its own device, and rank 0 claims the
    directory, gathers the parts and writes the one output, identical to a single-process
    run; on the other ranks the return value is None.
    """
    from contextlib import nullcontext

    from . import distributed
    from .errors import NonFiniteError
    from .optimizer import optimize
    from .rundir import RunDir
    from .sharding import Shard, split

    shard = shard or Shard()
    world, device = distributed.setup(config.device)
    claim = out_dir is not None and world.is_main  # rank 0 alone writes
    run_dir = RunDir.claim(out_dir, overwrite=overwrite) if claim else None
    with run_dir or nullcontext():
        if run_dir is not None and on_start is not None:
            on_start(run_dir.path)
        all_seeds = [int(s) for s in (seeds if seeds is not None else config.seeds())]
        wanted = split(range(len(all_seeds)), shard.index, shard.count)  # indices of this shard's samples
        mine = split(wanted, world.rank, world.size)  # ... and of this rank's part of them
        build_config = config.updated(device=device) if device != config.device else config
        # a rank with no samples (fewer samples than ranks) still builds, for rank 0's pictures
        built = mine or wanted[:1] or [0]
        prior, variable, terms, options = build(build_config, seeds=[all_seeds[i] for i in built], indices=built)
        init = _init_rows(options, variable, mine, len(all_seeds))
        start = time.perf_counter()
        if not world.distributed:
            try:
                result = optimize(prior, variable, terms, [all_seeds[i] for i in mine], options, init_params=init,
                                  progress=progress)
            except NonFiniteError as exc:
                if run_dir is not None and exc.partial is not None:  # keep what was done before the failure
                    _write(run_dir, config, exc.partial, prior, time.perf_counter() - start, "failed")
                    exc.args = (f"{exc.args[0]}\npartial results of the {exc.partial.steps_done} steps before it: "
                                f"{run_dir.path}/",)
                raise
        else:
            from .sharding import gather_results

            part = (optimize(prior, variable, terms, [all_seeds[i] for i in mine], options, init_params=init,
                             progress=progress and world.is_main) if mine else None)
            result = gather_results(part)
            if not world.is_main:
                return None
        if run_dir is not None:
            partial = None if shard.whole else (shard, len(all_seeds))
            _write(run_dir, config, result, prior, time.perf_counter() - start, None, partial=partial)
            result.out_dir = run_dir.path
    return result


def _write(run_dir, config, result, prior, elapsed, status, partial=None) -> None:
    """Write the run's files; Ctrl-C meanwhile is held until they are complete, then said.
    ``partial`` = (shard, total samples) adds what ``diffprior merge`` needs."""
    import sys

    from .outputs import write_run
    from .rundir import deferred_interrupts

    def message():
        return f"still writing the results to {run_dir.path}/; they will be complete in a moment"

    with deferred_interrupts(message) as presses:
        if partial is not None:
            from .sharding import write_partial

            run_dir.start_overwrite()  # the manifest goes first, and comes back last in write_run
            write_partial(run_dir, partial[0], total=partial[1], result=result, prior=prior)
        write_run(run_dir, config, result, prior, elapsed=elapsed, status=status)
    if presses:
        kept = ", ".join(run_dir.written)
        print(f"kept {run_dir.path}/ complete ({result.steps_done} steps): {kept}", file=sys.stderr)


def _init_rows(options, variable, rows: list[int], total: int):
    """With ``init.type = "file"`` holding one start per sample, the starts of ``rows``
    (None otherwise: ``optimize`` reads the file itself)."""
    if options.init.type != "file" or len(rows) == total:
        return None
    from .optimizer import load_init_file

    tensor = load_init_file(options.init.path)
    if tuple(tensor.shape) != (total, *variable.param_shape):
        return None  # one start shared by every sample
    return tensor[rows[0]:rows[-1] + 1] if rows else tensor[:0]
