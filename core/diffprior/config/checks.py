"""Checks of a whole run config that no single field can make: schedules that go negative
over the run, a denoise start beyond the prior's T, seeds past 2^63, a batch that cannot fit
in memory, a target whose shape is not the prior's, term names. ``diffprior validate`` runs
them (through :func:`diffprior.config.run_config.validate_config`), and so does every run before
building anything. Only what a config and small metadata files say is used, never model
weights. No torch.
"""

from __future__ import annotations

import math
import typing
from typing import Any, Iterable

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer
FLOAT32_COPIES = 10  # per sample during a step: params, grad, 2 Adam moments, x, x_t, ε, ε̂, 2 temporaries
SCHEDULE_POINTS = 1001  # where schedules are evaluated (every step for shorter runs)


# ------------------------------------------------------------------ booleans are not numbers
def _numeric(annotation) -> bool:
    if annotation in (int, float):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _numeric(typing.get_args(annotation)[0])
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool not in args and any(_numeric(a) for a in args)  # e.g. Union[float, list[float]]
    return False


def reject_booleans(model_cls, data: Any) -> Any:
    """``steps = true`` is not 1: pydantic would take a boolean for a number, diffprior does not."""
    if isinstance(data, dict):
        for name, value in data.items():
            if isinstance(value, bool) and isinstance(name, str):
                field = model_cls.model_fields.get(name)
                if field is not None and _numeric(field.annotation):
                    raise ValueError(f"{name} must be a number, not {str(value).lower()}")
    return data


# ------------------------------------------------------------------ names
def check_name(value: str | None) -> str | None:
    if value is None:
        return value
    if not value.strip():
        raise ValueError("a term name cannot be empty")
    bad = [c for c in value if ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029"]
    if bad:
        raise ValueError(f"a term name cannot contain control characters (found {bad[0]!r}); it names files, "
                         "plots and metrics")
    if value != value.strip():
        raise ValueError(f"a term name cannot start or end with spaces, got {value!r}")
    return value


# ------------------------------------------------------------------ schedules over a run
def schedule_points(steps: int) -> Iterable[int]:
    if steps <= SCHEDULE_POINTS:
        return range(steps)
    return sorted({round(i * (steps - 1) / (SCHEDULE_POINTS - 1)) for i in range(SCHEDULE_POINTS)})


def lowest(schedule, steps: int) -> tuple[float, int]:
    """(lowest value over the run, the step where it is)."""
    best, where = math.inf, 0
    for step in schedule_points(steps):
        value = schedule.at_step(step, steps)
        if not math.isfinite(value):
            return value, step
        if value < best:
            best, where = value, step
    return best, where


def _describe(schedule) -> str:
    data = schedule.model_dump(mode="json", exclude_defaults=True)
    data.pop("type", None)
    return f"{schedule.type} schedule {data}" if data else f"{schedule.type} schedule"


def check_run(config) -> list[str]:
    """Problems of a validated run config, each ``key.path: message``."""
    problems: list[str] = []
    steps = config.optimizer.steps

    def non_negative(where: str, schedule, what: str, *, positive: bool = False) -> None:
        value, step = lowest(schedule, steps)
        if not math.isfinite(value):
            problems.append(f"{where}: the {_describe(schedule)} is {value} at step {step} of {steps}")
        elif value < 0 or (positive and value <= 0):
            at = f" at step {step} of {steps} (s = {step / steps:.3g})" if schedule.type != "constant" else ""
            verb = "must be positive" if positive else "cannot be negative"
            problems.append(f"{where}: {what} {verb}; the {_describe(schedule)} is {value:.4g}{at}")

    before = len(problems)
    non_negative("optimizer.lr", config.optimizer.lr, "the learning rate")
    lr_max = max(config.optimizer.lr.at_step(s, steps) for s in schedule_points(steps))
    if lr_max <= 0 and len(problems) == before:
        problems.append("optimizer.lr: the learning rate is 0 for the whole run: nothing would move")
    non_negative("prior_weight", config.prior_weight, "the prior's weight")
    for i, term in enumerate(config.terms):
        where = f"terms.{i}" if term.weight is None else f"terms.{i}.weight"
        non_negative(where, term.resolved_weight(), f"the weight of term {term.name or term.type!r}")
        clip = term.resolved_clip()
        if clip.value is not None:
            non_negative(f"terms.{i}.clip", clip.value, f"the clip bound ({clip.mode})", positive=True)
    names = [t.name or t.type for t in config.terms]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"terms: two terms are called {name!r}; give each a different name = '...'")
    if "prior" in names:
        problems.append("terms: 'prior' names the prior's own loss; call the term something else")

    last_seed = config.seed + config.batch - 1
    if last_seed > MAX_SEED:
        problems.append(f"seed: sample i gets seed + i, and {config.seed} + {config.batch - 1} is beyond 2^63 - 1; "
                        "seeds must fit in a signed 64-bit integer")

    T = _declared(config.prior, "declared_T")
    if config.denoise is not None and T is not None and config.denoise.from_t > T - 1:
        problems.append(f"denoise.from_t: {config.denoise.from_t} is beyond the prior's last timestep {T - 1} "
                        f"(T = {T})")
    shape = _declared(config.prior, "declared_shape")
    if shape is not None:
        at_once = min(config.batch, config.batch_size or config.batch)  # one batch is in memory at a time
        problem = memory_problem(at_once, shape, setting="batch" if at_once == config.batch else "batch_size")
        if problem:
            problems.append(problem)
        for i, term in enumerate(config.terms):
            check = getattr(term, "check_prior_shape", None)
            message = check(tuple(shape)) if check is not None else None
            if message:
                problems.append(f"terms.{i}: {message}")
    return problems


def _declared(prior, method: str):
    fn = getattr(prior, method, None)
    if fn is None:
        return None
    try:
        return fn()
    except Exception:  # a file it reads may be missing: the prior's own build reports that
        return None


# ------------------------------------------------------------------ memory
def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_problem(batch: int, shape, available: int | None = None, setting: str = "batch") -> str | None:
    """A refusal with the figure when ``batch`` samples of ``shape`` optimised together cannot
    fit in memory (``setting``: the config key that asked for them)."""
    available = available_memory() if available is None else available
    per_sample = math.prod(int(d) for d in shape) * 4 * FLOAT32_COPIES
    need = batch * per_sample
    if available is None or need <= available:
        return None
    fits = max(1, available // per_sample)
    return (f"{setting}: {batch} samples of shape {tuple(shape)} need at least {_gb(need)} for the optimisation's "
            f"tensors alone ({FLOAT32_COPIES} float32 copies of each sample, the network's activations come on top); "
            f"{_gb(available)} is available: use batch_size <= {fits} (the samples optimised at once)")


def _gb(n: int) -> str:
    if n >= 1e11:
        return f"{n / 1e9:,.0f} GB"
    return f"{n / 1e9:.3g} GB" if n >= 1e8 else f"{n / 1e6:.3g} MB"
