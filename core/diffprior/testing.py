"""diffprior's conformance kit: checks every prior, variable, term and plugin should pass.

It is a pytest plugin (entry point ``pytest11``), so once diffprior is installed a plugin's
tests can ask for the fixtures without importing anything::

    def test_my_term(diffprior_conformance):
        diffprior_conformance.check_term(MyTermConfig, {"strength": 2.0})

The ``check_*`` functions are plain functions too (``from diffprior.testing import
check_term``): each raises ``AssertionError`` with a message saying what is wrong and how to
fix it, and returns what it computed for further assertions.

Checks:

- :func:`check_config`: a config model has a literal ``type``, forbids unknown keys,
  round-trips through JSON, exports a JSON Schema; a term's declared ``default_weight``
  and ``default_clip`` validate.
- :func:`check_term`: ``log_c`` returns one finite score per sample, has a finite,
  non-zero gradient, and row i of a batch equals the single-sample result (scores,
  gradients and metrics).
- :func:`check_prior`: ``eps`` keeps the input shape, is finite and differentiable, and is
  per-sample; the noise schedule is a valid DDPM schedule.
- :func:`check_variable`: ``init``, ``to_x`` and ``term_view`` are per-sample, shaped like
  the prior's samples, finite and differentiable.
- :func:`check_lazy_import`: importing a plugin's hook module (in a fresh interpreter)
  does not import torch or timm.
- :func:`check_plugin`: an installed distribution loads in strict mode and everything it
  registers passes the class-level checks.

:func:`torchrun` launches a ``diffprior`` command (or a script) as several CPU processes
under ``torchrun`` (gloo), for tests of sharded commands.

:class:`PluginSandbox` (fixture ``diffprior_sandbox``) pip-installs distributions into a
temporary folder and runs ``diffprior`` against them in a subprocess, reusing the current
interpreter's torch.

This module is imported by pytest on every run: it imports neither torch nor pydantic at
import time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pytest

DEFAULT_SHAPE = (1, 16, 16)
HEAVY_MODULES = ("torch", "timm")


class ConformanceError(AssertionError):
    """A plugin does not follow diffprior's contract; the message says how to fix it.

    ``check`` names the part of the contract that failed where a report lists them
    (``diffprior check-plugin``): one of :data:`TERM_CHECKS`, or ``"params"`` when the
    given params do not validate."""

    def __init__(self, message: str, check: str | None = None):
        super().__init__(message)
        self.check = check


# the parts of check_term, in the order it checks them
TERM_CHECKS = ("build", "scores", "gradient", "metrics", "per-sample independence")


def _fail(message: str, check: str | None = None) -> None:
    raise ConformanceError(message, check)


# ----------------------------------------------------------------------------- helpers
def default_prior(shape: Sequence[int] = DEFAULT_SHAPE):
    """A small analytic prior (N(0, 0.25·I), linear schedule, data range [-1, 1])."""
    import torch

    from diffprior.method.noise import NoiseSchedule
    from diffprior.method.priors import GaussianPrior

    shape = tuple(int(s) for s in shape)
    return GaussianPrior(torch.zeros(shape), torch.full(shape, 0.25), NoiseSchedule.linear(1000), data_range=(-1.0, 1.0))


def _as_prior(prior):
    """None → :func:`default_prior`; a shape → a default prior of that shape; a config → built."""
    from diffprior.config.bases import BuildContext, PriorConfig
    from diffprior.method.priors import Prior

    if prior is None:
        return default_prior()
    if isinstance(prior, Prior):
        return prior
    if isinstance(prior, PriorConfig):
        return prior.build(BuildContext(device="cpu"))
    if isinstance(prior, (tuple, list)):
        return default_prior(prior)
    _fail(f"prior= must be a diffprior.Prior, a PriorConfig, a sample shape or None, got {prior!r}")


def _close(a, b, *, atol: float, rtol: float) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=rtol))


def _max_diff(a, b) -> float:
    return float((a - b).abs().max()) if a.shape == b.shape else float("inf")


def _finite(t) -> bool:
    import torch

    return bool(torch.isfinite(t).all())


def _instance(config_cls, params: Mapping | None, base_dir: Path | None):
    from pydantic import ValidationError

    try:
        return config_cls.model_validate(dict(params or {}), context={"base_dir": base_dir})
    except ValidationError as exc:
        _fail(f"{config_cls.__name__} does not accept params {dict(params or {})!r}:\n{exc}", "params")


# ----------------------------------------------------------------------------- configs
def check_config(config_cls, params: Mapping | None = None, *, base_dir: Path | str | None = None):
    """Check a plugin config model; return the validated instance for ``params``."""
    from pydantic import ValidationError

    from diffprior.config.registrable import PluginConfig
    from diffprior.config.bases import TermConfig

    if not (isinstance(config_cls, type) and issubclass(config_cls, PluginConfig)):
        _fail(f"{config_cls!r} must subclass diffprior.PriorConfig, VariableConfig or TermConfig")
    try:
        name = config_cls.type_name()
    except TypeError as exc:
        _fail(str(exc))
    if not name or name != name.strip():
        _fail(f"{config_cls.__name__}.type must be a non-empty name without surrounding spaces, got {name!r}")
    base_dir = Path(base_dir) if base_dir is not None else None
    config = _instance(config_cls, params, base_dir)
    if config.type != name:
        _fail(f"{config_cls.__name__}: the 'type' field must be a Literal[{name!r}], it accepted {config.type!r}")
    try:
        config_cls.model_validate({**dict(params or {}), "no_such_key_for_conformance": 1}, context={"base_dir": base_dir})
    except ValidationError:
        pass
    else:
        _fail(f"{config_cls.__name__} accepts unknown keys: keep the base class's model_config (extra='forbid')")

    try:
        text = config.model_dump_json()
    except Exception as exc:
        _fail(f"{config_cls.__name__} cannot be written as JSON ({type(exc).__name__}: {exc}); "
              "use JSON-friendly field types (numbers, strings, lists, Paths, nested models)")
    again = _instance(config_cls, json.loads(text), base_dir)
    if again != config:
        _fail(f"{config_cls.__name__} does not round-trip through JSON:\n  {config.model_dump(mode='json')}\n"
              f"  became {again.model_dump(mode='json')}")
    try:
        json.dumps(config_cls.model_json_schema())
    except Exception as exc:
        _fail(f"{config_cls.__name__} has no JSON Schema ({type(exc).__name__}: {exc}); `diffprior schema` would fail")
    if issubclass(config_cls, TermConfig):
        check_term_defaults(config_cls)
    return config


def check_term_defaults(config_cls) -> None:
    """A term declares its own ``default_weight`` and ``default_clip``, and both validate."""
    from pydantic import ValidationError

    from diffprior.method.clipping import ClipPolicy
    from diffprior.config.bases import TermConfig
    from diffprior.method.schedules import parse_schedule

    examples = {"default_weight": '{"linear": [0.01, 0.0]}', "default_clip": '"none"'}
    for attr, example in examples.items():
        owner = next((c for c in config_cls.__mro__ if attr in vars(c)), None)
        if owner is None or owner is TermConfig:
            _fail(f"{config_cls.__name__} must declare its own {attr}, e.g. `{attr}: ClassVar = {example}`")
    try:
        weight = parse_schedule(config_cls.default_weight)
    except (ValueError, ValidationError) as exc:
        _fail(f"{config_cls.__name__}.default_weight = {config_cls.default_weight!r} is not a valid schedule: {exc}")
    for s in (0.0, 0.5, 1.0):
        value = weight(s, round(s * 100), 100)
        if not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
            _fail(f"{config_cls.__name__}.default_weight gives {value!r} at progress {s}; it must be a finite number")
    try:
        ClipPolicy.model_validate(ClipPolicy.parse(config_cls.default_clip))
    except (ValueError, ValidationError) as exc:
        _fail(f"{config_cls.__name__}.default_clip = {config_cls.default_clip!r} is not a clip policy "
              f"('none', {{max_norm = V}} or {{relative = R, ema = 0.5}}): {exc}")


# ----------------------------------------------------------------------------- terms
@dataclass
class TermReport:
    """What :func:`check_term` computed: the batch's scores, their gradient and metrics."""

    config: Any
    term: Any
    x: Any
    log_c: Any
    grad: Any
    metrics: dict = field(default_factory=dict)


def _term_inputs(prior, batch: int, seed: int):
    """Per-sample uniform draws inside the prior's data range (clamped to [-1, 1] for wide ranges)."""
    import torch

    lo, hi = prior.data_range
    lo, hi = max(lo, -1.0), min(hi, 1.0)
    draws = [torch.rand(prior.shape, generator=torch.Generator().manual_seed(seed + i)) for i in range(batch)]
    return (lo + (hi - lo) * torch.stack(draws)).to(prior.device)


def check_term(
    config_cls,
    params: Mapping | None = None,
    *,
    prior=None,
    x=None,
    batch: int = 3,
    seed: int = 0,
    steps: int = 10,
    base_dir: Path | str | None = None,
    allow_zero_grad: bool = False,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> TermReport:
    """Build a term from ``config_cls(**params)`` and check the Term contract.

    ``prior``: the prior the term is built against (default: a 1×16×16 Gaussian prior; a
    shape, a PriorConfig or a built Prior are accepted). ``x``: the batch the term scores
    (default: ``batch`` per-sample uniform draws in the data range).
    """
    import torch

    from diffprior.config.bases import BuildContext
    from diffprior.method.terms import Term

    config = check_config(config_cls, params, base_dir=base_dir)
    prior = _as_prior(prior)
    ctx = BuildContext(device=str(prior.device), prior=prior, steps=steps, base_dir=Path(base_dir) if base_dir else None)
    term = config.build(ctx)
    if not isinstance(term, Term):
        _fail(f"{config_cls.__name__}.build() returned {type(term).__name__}; it must return a diffprior.Term", "build")
    x = _term_inputs(prior, batch, seed) if x is None else x.detach().clone()
    batch = x.shape[0]
    if batch < 2:
        _fail("check_term needs a batch of at least 2 samples to check per-sample independence")
    x.requires_grad_(True)
    scores = term.log_c(x)
    name = config_cls.__name__
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (batch,):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        _fail(f"{name}: log_c(x) for a batch of {batch} must return shape ({batch},), one score per sample; "
              f"got {shape}. Reduce over every dimension but the first, e.g. .flatten(1).mean(1)", "scores")
    if not _finite(scores):
        _fail(f"{name}: log_c returned non-finite scores {scores.tolist()}", "scores")
    if not scores.requires_grad:
        _fail(f"{name}: log_c is not differentiable in x (no grad_fn); avoid .detach(), .item() and numpy on x",
              "gradient")
    (grad,) = torch.autograd.grad(scores.sum(), x, allow_unused=True)
    if grad is None:
        _fail(f"{name}: log_c does not depend on x; its gradient is missing", "gradient")
    if not _finite(grad):
        _fail(f"{name}: the gradient of log_c has NaN/inf entries; guard divisions and square roots with an epsilon",
              "gradient")
    if not allow_zero_grad and not bool((grad != 0).any()):
        _fail(f"{name}: the gradient of log_c is zero everywhere on the test batch; the optimiser gets no signal "
              "(pass allow_zero_grad=True if that is expected for these inputs)", "gradient")
    metrics = {k: v.detach() for k, v in term.metrics(x.detach()).items()}
    for key, value in metrics.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (batch,):
            _fail(f"{name}: metrics()[{key!r}] must be a tensor of shape ({batch},), one figure per sample", "metrics")
    _check_rows(name, term, x.detach(), scores.detach(), grad, metrics, atol=atol, rtol=rtol)
    return TermReport(config, term, x.detach(), scores.detach(), grad, metrics)


def _check_rows(name, term, x, scores, grad, metrics, *, atol, rtol) -> None:
    """Row i of the batch must equal the term evaluated on sample i alone."""
    import torch

    hint = "a term must not mix samples (no batch statistics such as x.mean() over the batch)"
    for i in range(x.shape[0]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        single = term.log_c(xi)
        if not _close(single.detach(), scores[i : i + 1], atol=atol, rtol=rtol):
            _fail(f"{name}: log_c of sample {i} alone is {single.detach().tolist()}, but row {i} of the batch "
                  f"gives {scores[i].item()}; {hint}", "per-sample independence")
        (gi,) = torch.autograd.grad(single.sum(), xi, allow_unused=True)
        if gi is None or not _close(gi, grad[i : i + 1], atol=atol, rtol=rtol):
            _fail(f"{name}: the gradient for sample {i} alone differs from row {i} of the batch gradient "
                  f"(max difference {_max_diff(gi, grad[i:i + 1]) if gi is not None else 'inf'}); {hint}",
                  "per-sample independence")
        for key, value in term.metrics(x[i : i + 1]).items():
            if not _close(value.detach(), metrics[key][i : i + 1], atol=atol, rtol=rtol):
                _fail(f"{name}: metric {key!r} of sample {i} alone differs from row {i} of the batch; {hint}",
                      "per-sample independence")


# ----------------------------------------------------------------------------- priors
def check_prior(prior, params: Mapping | None = None, *, batch: int = 3, seed: int = 0,
                base_dir: Path | str | None = None, atol: float = 1e-4, rtol: float = 1e-3):
    """Check a prior (a PriorConfig class with ``params``, a PriorConfig or a built Prior); return it."""
    import torch

    from diffprior.config.bases import BuildContext, PriorConfig
    from diffprior.method.priors import Prior

    if isinstance(prior, type):
        prior = check_config(prior, params, base_dir=base_dir)
    if isinstance(prior, PriorConfig):
        prior = prior.build(BuildContext(device="cpu", base_dir=Path(base_dir) if base_dir else None))
    if not isinstance(prior, Prior):
        _fail(f"expected a diffprior.Prior (or its config), got {type(prior).__name__}")
    name = type(prior).__name__
    lo, hi = prior.data_range
    if not lo < hi:
        _fail(f"{name}: data_range {prior.data_range} must be (low, high) with low < high")
    ab = prior.noise.alphas_cumprod
    if prior.T < 2 or not _finite(ab) or not bool(((ab > 0) & (ab <= 1)).all()) or not bool((ab[1:] <= ab[:-1]).all()):
        _fail(f"{name}: the noise schedule's alphas_cumprod must lie in (0, 1] and decrease over T >= 2 steps")
    prior.eval()
    gens = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
    x_t = torch.stack([torch.randn(prior.shape, generator=g) for g in gens]).to(prior.device).requires_grad_(True)
    t = torch.linspace(0, prior.T - 1, batch).round().long().to(prior.device)
    eps = prior.eps(x_t, t)
    if tuple(eps.shape) != tuple(x_t.shape):
        _fail(f"{name}: eps(x_t, t) must have x_t's shape {tuple(x_t.shape)}, got {tuple(eps.shape)}")
    if not _finite(eps):
        _fail(f"{name}: eps returned NaN/inf")
    (grad,) = torch.autograd.grad(eps.pow(2).sum(), x_t, allow_unused=True)
    if grad is None or not _finite(grad):
        _fail(f"{name}: eps must be differentiable in x_t with a finite gradient (the 'full' gradient needs it)")
    with torch.no_grad():
        for i in range(batch):
            single = prior.eps(x_t[i : i + 1].detach(), t[i : i + 1])
            if not _close(single, eps[i : i + 1].detach(), atol=atol, rtol=rtol):
                _fail(f"{name}: eps of sample {i} alone differs from row {i} of the batch (max difference "
                      f"{_max_diff(single, eps[i:i + 1].detach()):.3g}); batch statistics (e.g. BatchNorm in "
                      "training mode) break per-sample independence")
    return prior


# ----------------------------------------------------------------------------- variables
def check_variable(variable, params: Mapping | None = None, *, prior=None, batch: int = 3, seed: int = 0,
                   progress: float = 0.5, base_dir: Path | str | None = None, atol: float = 1e-5, rtol: float = 1e-4):
    """Check a variable (a VariableConfig class with ``params``, a config or a built Variable)."""
    import torch

    from diffprior.config.bases import BuildContext, VariableConfig
    from diffprior.method.rng import generators
    from diffprior.method.variables import Variable

    prior = _as_prior(prior)
    if isinstance(variable, type):
        variable = check_config(variable, params, base_dir=base_dir)
    if isinstance(variable, VariableConfig):
        variable = variable.build(BuildContext(device=str(prior.device), prior=prior))
    if not isinstance(variable, Variable):
        _fail(f"expected a diffprior.Variable (or its config), got {type(variable).__name__}")
    name = type(variable).__name__
    seeds = [seed + i for i in range(batch)]
    params_t = variable.init(generators(seeds), prior.device)
    expected = (batch, *variable.param_shape)
    if tuple(params_t.shape) != expected or not _finite(params_t):
        _fail(f"{name}: init must return finite parameters of shape {expected}, got {tuple(params_t.shape)}")
    for i, s in enumerate(seeds):
        alone = variable.init(generators([s]), prior.device)
        if not _close(alone, params_t[i : i + 1], atol=atol, rtol=rtol):
            _fail(f"{name}: init for seed {s} alone differs from row {i} of the batch; draw from each sample's "
                  "own generator (diffprior.per_sample_randn)")
    params_t = params_t.detach().requires_grad_(True)
    x = variable.to_x(params_t, progress)
    if tuple(x.shape) != (batch, *prior.shape) or not _finite(x):
        _fail(f"{name}: to_x must return finite x of shape {(batch, *prior.shape)}, got {tuple(x.shape)}")
    view = variable.term_view(x)
    if view.shape[0] != batch or not _finite(view):
        _fail(f"{name}: term_view must keep the batch dimension and be finite")
    (grad,) = torch.autograd.grad(x.sum() + view.sum(), params_t, allow_unused=True)
    if grad is None or not _finite(grad) or not bool((grad != 0).any()):
        _fail(f"{name}: x must be differentiable in the parameters with a finite, non-zero gradient")
    for i in range(batch):
        alone = variable.to_x(params_t[i : i + 1].detach(), progress)
        if not _close(alone, x[i : i + 1].detach(), atol=atol, rtol=rtol):
            _fail(f"{name}: to_x of sample {i} alone differs from row {i} of the batch")
    return variable


# ----------------------------------------------------------------------------- imports and plugins
def check_lazy_import(module: str, forbidden: Iterable[str] = HEAVY_MODULES, *, env: Mapping[str, str] | None = None,
                      python: str | None = None) -> None:
    """Import ``module`` in a fresh interpreter and fail if that imported any of ``forbidden``."""
    forbidden = list(forbidden)
    code = textwrap.dedent(f"""
        import importlib, json, sys
        importlib.import_module({module!r})
        print(json.dumps([m for m in {forbidden!r} if m in sys.modules]))
    """)
    proc = subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(env) if env is not None else None, timeout=300)
    if proc.returncode != 0:
        _fail(f"importing {module} failed:\n{proc.stderr.strip()}")
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    if loaded:
        _fail(f"importing {module} imports {', '.join(loaded)}; hook modules must stay light so `diffprior --help` "
              "is fast: import heavy libraries inside build() (or in a module that build() imports)")


def check_plugin(distribution: str, *, expect: Mapping[str, Iterable[str]] | None = None):
    """Load the installed ``distribution`` alone, in strict mode; check what it registers.

    ``expect`` maps a kind ("term", "prior", ...) to names that must be registered.
    Returns its :class:`diffprior.plugins.registry.PluginInfo`.
    """
    from diffprior.plugins import registry as plugins

    dist = plugins.normalise_name(distribution)
    try:
        registry = plugins.load(plugins.PluginSettings(strict=True, only={dist}))
    except plugins.PluginError as exc:
        _fail(str(exc))
    info = registry.plugins.get(dist)
    if info is None:
        found = sorted(registry.plugins)
        _fail(f"no plugin distribution {dist!r} was found (loaded: {', '.join(found)}); check its "
              "[project.entry-points.diffprior] table and that it is installed (pip install -e .)")
    if not any(info.registers.values()):
        _fail(f"{dist} loaded but registered nothing; call register(...) in a register_* hook")
    for kind, names in info.registers.items():
        for name in names:
            obj = registry.get(kind, name)
            if kind not in plugins.NAMED_OBJECT_KINDS and obj.kind != kind:
                _fail(f"{dist}: {name!r} was registered as a {kind} but {obj.__name__} is a {obj.kind or '?'} config")
            if kind in ("term",):
                check_term_defaults(obj)
            if kind not in plugins.NAMED_OBJECT_KINDS:
                json.dumps(obj.model_json_schema())
    for kind, names in (expect or {}).items():
        missing = set(names) - set(info.registers.get(kind, []))
        if missing:
            _fail(f"{dist} does not register {kind}(s) {sorted(missing)}; it registers {info.registers}")
    return info


# ----------------------------------------------------------------------------- sandbox
_IGNORE_ANYWHERE = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__", ".pytest_cache")
# Build outputs and run folders only at a source's top: ``diffprior/runs`` is a package.
_IGNORE_AT_TOP = {"build", "dist", "runs"}


def _copy_source(source: Path, copy: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(_IGNORE_ANYWHERE(folder, names))
        if Path(folder) == source:
            skipped |= _IGNORE_AT_TOP & set(names)
        return skipped

    shutil.copytree(source, copy, ignore=ignore)


class PluginSandbox:
    """A temporary install target: distributions go into ``site``, found through PYTHONPATH.

    The subprocesses use the current interpreter (so torch and the other dependencies are
    reused) with ``site`` first on the path, so what is installed here shadows editable
    installs of the same distributions.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.site = self.root / "site"
        self.site.mkdir(parents=True, exist_ok=True)
        self._sources = self.root / "sources"
        self._copies = 0

    def pip_install(self, *sources: Path | str, timeout: float = 600) -> None:
        """``pip install --target`` the given source folders (no dependencies, no index).

        Each source is copied first, so building never writes into the original folder.
        """
        copies = []
        for source in sources:
            source = Path(source).resolve()
            self._copies += 1
            copy = self._sources / f"{self._copies}-{source.name}"
            _copy_source(source, copy)
            copies.append(str(copy))
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
               "--disable-pip-version-check", "--upgrade", "--target", str(self.site), *copies]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"pip install into the sandbox failed:\n{proc.stdout}\n{proc.stderr}")

    def add_distribution(self, name: str, files: Mapping[str, str], entry_points: Mapping[str, str],
                         version: str = "0.0.1") -> None:
        """Write a minimal installed distribution: its files, METADATA and entry_points.txt.

        ``files`` maps paths relative to ``site`` to their text; ``entry_points`` maps entry
        point names of the ``diffprior`` group to ``module`` references.
        """
        for rel, text in files.items():
            path = self.site / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        info = self.site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[diffprior]\n{lines}")

    def env(self, **overrides: str | None) -> dict[str, str]:
        """The environment of sandbox subprocesses; ``NAME=None`` removes a variable."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIFFPRIOR_")}
        env["PYTHONPATH"] = os.pathsep.join([str(self.site), *filter(None, [os.environ.get("PYTHONPATH")])])
        env["DIFFPRIOR_CACHE_DIR"] = str(self.root / "cache")  # the plugin index of this sandbox only
        env.setdefault("OMP_NUM_THREADS", "1")
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def python(self, *args: str, env: Mapping[str, str] | None = None, cwd: Path | str | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
        """Run the current interpreter with ``args`` against the sandbox."""
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                              env=dict(env) if env is not None else self.env(), timeout=timeout)

    def cli(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """Run ``diffprior ARGS`` against the sandbox."""
        return self.python("-m", "diffprior.cli", *args, **kwargs)


# ----------------------------------------------------------------------------- schedules
def check_schedule(schedule_cls, params: Mapping | None = None, *, steps: int = 50):
    """Check a schedule class; return the validated instance for ``params``.

    - it subclasses :class:`diffprior.Schedule`, has a literal ``type``, forbids unknown
      keys and round-trips through JSON (:func:`check_config`);
    - ``schedule(s, step, steps)`` returns a finite Python number for s in [0, 1] and
      every step, the same one on every call (no hidden state: the optimizer and
      ``at_step`` may call it any number of times);
    - the short form ``{type_name = [values]}`` fills the fields in declaration order
      (``jitter`` excluded) and validates to an equal schedule;
    - ``jitter`` is accepted and leaves the value unchanged (the optimizer adds the noise,
      per sample, from each sample's generator).
    """
    from diffprior.method.schedules import parse_schedule
    from diffprior.method.schedules import Schedule

    if not (isinstance(schedule_cls, type) and issubclass(schedule_cls, Schedule)):
        _fail(f"{schedule_cls!r} must subclass diffprior.Schedule")
    schedule = check_config(schedule_cls, params)
    name = schedule_cls.type_name()

    def values(sched) -> list:
        out = []
        for step in range(steps + 1):
            s = step / steps
            try:
                value = sched(s, step, steps)
            except Exception as exc:
                _fail(f"{name}: schedule(s={s:g}, step={step}, steps={steps}) raised {type(exc).__name__}: {exc}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                _fail(f"{name}: schedule(s, step, steps) must return a float, got {type(value).__name__} at s={s:g}")
            if not math.isfinite(value):
                _fail(f"{name}: schedule(s={s:g}, step={step}, steps={steps}) is {value}; a schedule must be finite")
            out.append(float(value))
        return out

    first = values(schedule)
    if values(schedule) != first:
        _fail(f"{name}: calling the schedule twice gave different values; keep no state between calls "
              "(randomness belongs in jitter, which the optimizer draws per sample)")
    fields = [f for f in schedule_cls.model_fields if f not in ("type", "jitter")]
    data = schedule.model_dump(mode="json")
    short = {name: [data[f] for f in fields]}
    try:
        from_short = parse_schedule(short) if _registered_schedule(name, schedule_cls) else None
    except ValueError as exc:
        _fail(f"{name}: the short form {short} does not validate: {exc}")
    if from_short is not None and from_short != schedule:
        _fail(f"{name}: the short form {short} gave {from_short.model_dump(mode='json')}, not {data}")
    jittered = _instance(schedule_cls, {**dict(params or {}), "jitter": 0.5}, None)
    if values(jittered) != first:
        _fail(f"{name}: jitter must not change schedule(s, step, steps); the optimizer adds it per sample")
    return schedule


def _registered_schedule(name: str, cls) -> bool:
    """The short form resolves names through the registry: only check it for a registered class."""
    from diffprior.plugins.registry import get_registry

    reg = get_registry().schedules.get(name)
    return reg is not None and reg.obj is cls


# ----------------------------------------------------------------------------- pytest fixtures
class Conformance:
    """The checks, bundled for the ``diffprior_conformance`` fixture."""

    check_config = staticmethod(check_config)
    check_term_defaults = staticmethod(check_term_defaults)
    check_term = staticmethod(check_term)
    check_prior = staticmethod(check_prior)
    check_schedule = staticmethod(check_schedule)
    check_variable = staticmethod(check_variable)
    check_lazy_import = staticmethod(check_lazy_import)
    check_plugin = staticmethod(check_plugin)
    default_prior = staticmethod(default_prior)


@pytest.fixture
def diffprior_conformance() -> Conformance:
    """diffprior's conformance checks: ``check_term``, ``check_prior``, ``check_variable``, ..."""
    return Conformance()


@pytest.fixture
def diffprior_sandbox(tmp_path) -> PluginSandbox:
    """A :class:`PluginSandbox` in a temporary folder."""
    return PluginSandbox(tmp_path / "diffprior-sandbox")


# ------------------------------------------------------------------------------ torchrun
def torchrun(args, *, processes: int = 2, script: str | None = None, timeout: float = 240.0, env: dict | None = None):
    """Run ``diffprior ARGS...`` (or ``python SCRIPT ARGS...``) as ``processes`` CPU processes
    under torchrun (single node, gloo, one thread each). Returns the CompletedProcess
    (``returncode``, ``stdout``, ``stderr`` as text); ``timeout`` bounds the whole launch."""
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    command += [script] if script else ["-m", "diffprior.cli"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env=environment)
