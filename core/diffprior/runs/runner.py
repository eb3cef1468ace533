"""From a validated run config to a result and an output folder.

The run config *is* the run's :class:`~diffprior.Options`: it goes to :func:`optimize`
unchanged. ``build`` turns its prior, variable and terms into objects, handing each
``build`` a :class:`BuildContext` with the device, batch, seeds and config folder.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config.bases import BuildContext
from ..errors import ConfigError, NonFiniteError
from .directories import RunDir

BATCH_SIZE = "batch_size (--batch-size)"  # the setting, as errors name it


def build(config, *, seeds=None, base_dir: Path | None = None, indices=None, prior=None):
    """Build (prior, variable, weighted terms, options) from a run config.

    ``options`` is ``config`` itself. ``seeds`` (default ``config.seeds()``) and
    ``base_dir`` (default: the folder of the file the config was loaded from) go to every
    ``build`` through the :class:`BuildContext`, with ``indices`` (which samples of the whole
    run these seeds are; default 0..len(seeds)-1). ``prior``: one already built from this
    config (for the next batch of a run), used instead of building it again."""
    import torch

    from ..method.optimizer import WeightedTerm
    from ..method.variables import maps_x_back

    from ..config.checks import check_run, memory_problem

    problems = check_run(config)  # a config made in Python has not been through validate_config
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else "\n  " + "\n  ".join(problems))
    device = config.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} was asked for, but torch sees no CUDA device; use --device cpu")
    seeds = [int(s) for s in (seeds if seeds is not None else config.seeds())]
    base_dir = base_dir if base_dir is not None else getattr(config, "base_dir", None)
    ctx = BuildContext(device=device, steps=config.optimizer.steps, base_dir=base_dir, seeds=seeds, indices=indices)
    ctx.prior = prior if prior is not None else config.prior.build(ctx)
    problem = memory_problem(len(seeds), tuple(ctx.prior.shape))
    if problem:
        raise ConfigError(problem)
    variable = config.variable.build(ctx)
    if config.init.type == "prior" and not maps_x_back(variable):
        raise ConfigError(f"init: type 'prior' needs a variable that maps x back to its parameters; "
                          f"{type(variable).__name__} (variable.type = {config.variable.type!r}) does not "
                          f"define params_from_x")
    terms = [
        WeightedTerm(name, cfg.build(ctx), cfg.resolved_weight(), cfg.resolved_clip())
        for name, cfg in zip(config.term_names(), config.terms)
    ]
    return ctx.prior, variable, terms, config


def run(config, out_dir: Path | None = None, *, seeds=None, progress: bool = True, overwrite: bool = False,
        on_start=None, shard=None):
    """Run a config; write its outputs to ``out_dir`` when given. Returns the Result.

    ``seeds`` replaces the config's ``seed``/``batch`` (sample i gets ``seeds[i]``).
    ``out_dir`` is claimed before anything is built: when it already holds something, the
    run goes to ``out_dir-1`` (``-2``, ...) unless ``overwrite``; ``result.out_dir`` says
    where. ``on_start(path)`` is called with the claimed directory.

    With ``batch_size`` in the config the samples are optimised in consecutive batches of
    that size, one after the other (the prior is built once). ``shard`` (a
    :class:`~diffprior.runs.sharding.Shard`) solves only that contiguous part of the samples
    (whole batches) and writes a partial output (``diffprior merge`` joins them). Under
    ``torchrun`` each rank solves its whole batches of those samples on its own device, and
    rank 0 claims the directory, gathers the parts and writes the one output, identical to a
    single-process run; on the other ranks the return value is None.
    """
    from contextlib import nullcontext

    from . import distributed
    from .sharding import Shard, batches_of, process_rows

    shard = shard or Shard()
    world, device = distributed.setup(config.device)
    all_seeds = [int(s) for s in (seeds if seeds is not None else config.seeds())]
    total = len(all_seeds)
    # this process's samples: whole batches of batch_size (its shard's, then its rank's part of them)
    mine = process_rows(total, config.batch_size, shard, world, what="sample(s)", setting=BATCH_SIZE)
    claim = out_dir is not None and world.is_main  # rank 0 alone writes
    run_dir = RunDir.claim(out_dir, overwrite=overwrite) if claim else None
    with run_dir or nullcontext():
        if run_dir is not None and on_start is not None:
            on_start(run_dir.path)
        start = time.perf_counter()  # the run's seconds: building, optimising, gathering
        build_config = config.updated(device=device) if device != config.device else config
        batches = batches_of(mine, config.batch_size)
        # the prior is built once; a rank with no samples builds it too (rank 0 needs it to write)
        first = list(batches[0]) if batches else [0]
        built = build(build_config, seeds=[all_seeds[i] for i in first], indices=first)
        prior = built[0]
        try:
            result = _optimize_batches(build_config, all_seeds, batches, built, progress=progress and world.is_main)
        except NonFiniteError as exc:
            if run_dir is not None and exc.partial is not None and not world.distributed:
                # keep what was done before the failure
                _write(run_dir, config, exc.partial, prior, time.perf_counter() - start, "failed")
                exc.args = (f"{exc.args[0]}\npartial results of the {exc.partial.steps_done} steps before it: "
                            f"{run_dir.path}/",)
            raise
        if world.distributed:
            from .sharding import gather_results

            result = gather_results(result)
            if not world.is_main:
                return None
        if run_dir is not None:
            partial, rows = None, range(total)
            if not shard.whole:
                rows = process_rows(total, config.batch_size, shard, what="sample(s)", setting=BATCH_SIZE)  # of all its ranks
                partial = (shard, total, rows)
            _write(run_dir, config, result, prior, time.perf_counter() - start, None, partial=partial,
                   rows=list(rows)[:len(result.seeds)])  # an interrupted run holds its first samples
            result.out_dir = run_dir.path
    return result


def solve(config, *, seeds=None, prior=None, progress: bool = True):
    """Optimise a run config's samples in this process, ``batch_size`` at a time, and return
    the Result: no output folder and no torchrun split (a caller that splits the work itself,
    like ``tsp eval``, uses this). ``seeds`` replaces the config's seeds; ``prior``: one
    already built for this config (a loaded checkpoint reused across calls)."""
    from .sharding import batches_of

    all_seeds = [int(s) for s in (seeds if seeds is not None else config.seeds())]
    batches = batches_of(range(len(all_seeds)), config.batch_size)
    first = list(batches[0]) if batches else [0]
    built = build(config, seeds=[all_seeds[i] for i in first], indices=first, prior=prior)
    return _optimize_batches(config, all_seeds, batches, built, progress=progress)


def _optimize_batches(config, all_seeds: list[int], batches: list[range], built, *, progress: bool):
    """The Result of the samples in ``batches``, optimised one batch after the other (None
    when there is no batch). ``built`` is ``build``'s output for the first batch; later
    batches get their own variable and terms (they may hold per-sample data, picked with
    ``ctx.indices``) around the same prior.

    A batch interrupted by Ctrl-C ends the run with the batches done so far and that one; a
    NonFiniteError's ``partial`` holds the same."""
    from ..method.optimizer import optimize
    from .sharding import concat_results

    prior, variable, terms, options = built
    parts = []
    for k, batch in enumerate(batches):
        if k:
            _, variable, terms, options = build(config, seeds=[all_seeds[i] for i in batch], indices=list(batch),
                                                prior=prior)
        init = _init_rows(options, variable, list(batch), len(all_seeds))
        label = f"free energy, batch {k + 1}/{len(batches)}" if len(batches) > 1 else "free energy"
        try:
            part = optimize(prior, variable, terms, [all_seeds[i] for i in batch], options, init_params=init,
                            progress=progress and label)
        except NonFiniteError as exc:
            exc.partial = concat_results(parts + [exc.partial]) if exc.partial is not None else None
            raise
        parts.append(part)
        if part.interrupted:
            break
    return concat_results(parts) if parts else None


def _write(run_dir, config, result, prior, elapsed, status, partial=None, rows=None) -> None:
    """Write the run's files; Ctrl-C meanwhile is held until they are complete, then said.
    ``partial`` = (shard, total samples, the shard's rows) adds what ``diffprior merge`` needs."""
    import sys

    from .outputs import write_run
    from .directories import deferred_interrupts

    def message():
        return f"still writing the results to {run_dir.path}/; they will be complete in a moment"

    with deferred_interrupts(message) as presses:
        if partial is not None:
            from .sharding import write_partial

            run_dir.start_overwrite()  # the manifest goes first, and comes back last in write_run
            shard, total, rows = partial
            write_partial(run_dir, shard, total=total, rows=rows, result=result, prior=prior)
        write_run(run_dir, config, result, prior, elapsed=elapsed, status=status, rows=rows)
    if presses:
        kept = ", ".join(run_dir.written)
        print(f"kept {run_dir.path}/ complete ({result.steps_done} steps): {kept}", file=sys.stderr)


def _init_rows(options, variable, rows: list[int], total: int):
    """With ``init.type = "file"`` holding one start per sample, the starts of ``rows``
    (None otherwise: ``optimize`` reads the file itself)."""
    if options.init.type != "file" or len(rows) == total:
        return None
    from ..method.optimizer import load_init_file

    tensor = load_init_file(options.init.path)
    if tuple(tensor.shape) != (total, *variable.param_shape):
        return None  # one start shared by every sample
    return tensor[rows[0]:rows[-1] + 1] if rows else tensor[:0]
