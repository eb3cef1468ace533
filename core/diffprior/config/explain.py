"""What a run config composes, before it runs: the prior, the variable, each term with its
effective weight and clip and where they came from, and every schedule against the step.

``diffprior explain CONFIG [--plot FILE.png]`` prints :func:`describe` and draws
:func:`plot_schedules`; every run directory gets the same picture as ``schedules.png``. No torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def supplier(kind: str, type_name: str, registry=None) -> tuple[str | None, str | None]:
    """(distribution, version) that registered ``type_name`` as a ``kind``; (None, None) if none did."""
    if registry is None:
        from diffprior.plugins.registry import get_registry

        registry = get_registry()
    entry = registry.entries.get(kind, {}).get(type_name)
    if entry is None:
        return None, None
    info = registry.plugins.get(entry.distribution)
    return entry.distribution, (info.version if info is not None else None)


def _supplied_by(kind: str, type_name: str, registry) -> str:
    dist, version = supplier(kind, type_name, registry)
    return f"{dist} {version}" if dist else "unregistered"


def value_sources(config, registry=None) -> dict[str, dict[str, str]]:
    """Per term: where its weight and clip came from, ``config`` or the default of the type
    (naming the distribution and version that supplied it)."""
    sources = {}
    for name, cfg in zip(config.term_names(), config.terms):
        default = f"default of {cfg.type} ({_supplied_by('term', cfg.type, registry)})"
        sources[name] = {"weight": "config" if cfg.weight is not None else default,
                         "clip": "config" if cfg.clip is not None else default}
    return sources


def schedule_text(value: Any) -> str:
    """A schedule (or a number) in one line: ``linear start=0.01 end=0.0``."""
    if not hasattr(value, "model_dump"):
        return f"{value:g}" if isinstance(value, float) else str(value)
    fields = value.model_dump(mode="json")
    kind = fields.pop("type", type(value).__name__)
    jitter = fields.pop("jitter", 0.0)
    if kind == "constant":
        text = f"{fields.get('value'):g}"
    else:
        text = kind + "".join(f" {k}={v:g}" if isinstance(v, float) else f" {k}={v}" for k, v in fields.items())
    return text + (f" ± {jitter:g} (per sample)" if jitter else "")


def clip_text(clip) -> str:
    if clip.mode == "none":
        return "none"
    extra = f" (ema {clip.ema:g})" if clip.mode == "relative" else ""
    return f"{clip.mode} {schedule_text(clip.value)}{extra}"


def schedules_of(config) -> dict[str, Any]:
    """Every schedule of the run by what it sets: t, the learning rate, the prior's weight and
    each term's (effective) weight."""
    curves = {"timestep t": config.timesteps, "learning rate": config.optimizer.lr,
              "prior weight": config.prior_weight}
    for name, cfg in zip(config.term_names(), config.terms):
        curves[f"weight: {name}"] = cfg.resolved_weight()
    return curves


def schedule_values(schedule: Any, steps: int) -> list[float]:
    """The value at each step, as the optimizer computes it (before per-sample jitter)."""
    from diffprior.method.schedules import as_schedule

    schedule = as_schedule(schedule)
    return [float(schedule.at_step(step, steps)) for step in range(steps)]


def plot_schedules(config, path: Path | str):
    """One panel per schedule against the step (a band where a schedule jitters per sample);
    returns the figure, already saved to ``path`` and closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = config.optimizer.steps
    curves = schedules_of(config)
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 2.8), squeeze=False)
    T = config.prior.declared_T() if hasattr(config.prior, "declared_T") else None
    for ax, (name, schedule) in zip(axes[0], curves.items()):
        values = schedule_values(schedule, steps)
        if name == "timestep t" and T:  # as the optimizer uses it: rounded, within 1 .. T − 1
            values = [min(max(round(v), 1), T - 1) for v in values]
        ax.plot(range(steps), values, color="tab:blue", linewidth=1.2)
        jitter = getattr(schedule, "jitter", 0.0)
        if jitter:
            ax.fill_between(range(steps), [v - jitter for v in values], [v + jitter for v in values],
                            color="tab:blue", alpha=0.2, linewidth=0, label=f"± {jitter:g} per sample")
            ax.legend(loc="upper right", fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
    return fig


def _set_fields(cfg) -> str:
    """The fields a config file set on a component (its type, name, weight and clip aside)."""
    shown = []
    for key in sorted(cfg.model_fields_set - {"type", "name", "weight", "clip"}):
        value = getattr(cfg, key)
        if isinstance(value, Path):
            value = value.name
        shown.append(f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}")
    return ", ".join(shown)


def describe(config, registry=None) -> list[str]:
    """The composed run, one line per part; each term's weight and clip with their source."""
    lines = []
    for kind, cfg in (("prior", config.prior), ("variable", config.variable)):
        fields = _set_fields(cfg)
        lines.append(f"{kind:9} {cfg.type} ({_supplied_by(kind, cfg.type, registry)})" + (f": {fields}" if fields else ""))
    sources = value_sources(config, registry)
    for name, cfg in zip(config.term_names(), config.terms):
        fields = _set_fields(cfg)
        label = cfg.type if name == cfg.type else f"{name} ({cfg.type})"
        lines.append(f"term      {label} ({_supplied_by('term', cfg.type, registry)})" + (f": {fields}" if fields else ""))
        lines.append(f"            weight {schedule_text(cfg.resolved_weight()):28} [{sources[name]['weight']}]")
        lines.append(f"            clip   {clip_text(cfg.resolved_clip()):28} [{sources[name]['clip']}]")
    o = config.optimizer
    seeds = config.seeds()
    lines.append(f"optimizer {o.type}, {o.steps} steps, lr {schedule_text(o.lr)}; gradient {config.gradient}, "
                 f"{config.noise_samples} noise draw(s) per step")
    lines.append(f"timesteps {schedule_text(config.timesteps)}")
    lines.append(f"prior     weight {schedule_text(config.prior_weight)}")
    init = config.init
    start = {"prior": f"prior ({init.steps} {init.method} steps, best of {init.candidates})",
             "noise": f"noise (scale {init.scale:g})", "file": f"file {init.path}"}.get(init.type, init.type)
    lines.append(f"init      {start}")
    if config.denoise is not None:
        d = config.denoise
        lines.append(f"denoise   {d.method} from t = {d.from_t} ({d.steps or d.from_t} steps)")
    per = f", {config.batch_size} at a time" if config.batch_size else ""
    lines.append(f"samples   {len(seeds)} (seeds {seeds[0]}..{seeds[-1]}{per}) on {config.device}")
    return lines
