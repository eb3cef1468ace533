"""Plugin discovery: entry points of group ``diffprior`` loaded into a pluggy manager.

Every load is isolated: a plugin that fails to import, whose hook implementation does not
match the spec, or that registers a name another distribution already took produces a
warning naming the distribution, and the rest keeps working. Strict mode (the
``--strict-plugins`` flag or ``DIFFPRIOR_STRICT_PLUGINS=1``) turns each of those into a
:class:`PluginError`.

Environment variables:

``DIFFPRIOR_PLUGINS``          comma-separated distributions to load (the core always loads)
``DIFFPRIOR_DISABLE_PLUGINS``  comma-separated distributions to skip; ``third-party`` skips
                               every distribution that is not first-party
``DIFFPRIOR_STRICT_PLUGINS``   ``1`` makes any plugin problem an error

This module never imports torch.
"""

from __future__ import annotations

import os
import time
import traceback
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable

import pluggy

from diffprior.plugins import hooks as hookspecs
from diffprior.errors import PluginError, PluginWarning, unknown_name_message  # public in diffprior.errors

ENTRY_POINT_GROUP = "diffprior"
CORE_DISTRIBUTION = "diffprior"
# A distribution is first-party when its own metadata says so, with this entry point:
#   [project.entry-points."diffprior.distribution"]
#   first-party = "diffprior"
FIRST_PARTY_GROUP, FIRST_PARTY_NAME = "diffprior.distribution", "first-party"
KINDS = ("prior", "variable", "term", "schedule", "command", "dataset")
NAMED_OBJECT_KINDS = ("command", "dataset")  # dataclasses with a name field, not config classes
HOOK_OF_KIND = {kind: f"register_{kind}s" for kind in KINDS}


def declares_first_party(dist: "metadata.Distribution | None") -> bool:
    """Whether a distribution's metadata marks it as part of diffprior (see FIRST_PARTY_GROUP)."""
    if dist is None:
        return False
    if normalise_name(dist.metadata["Name"] or "") == CORE_DISTRIBUTION:
        return True
    return any(ep.name == FIRST_PARTY_NAME and ep.value.strip() == CORE_DISTRIBUTION
               for ep in dist.entry_points if ep.group == FIRST_PARTY_GROUP)


def _installed_first_party(distribution: str) -> bool:
    try:
        return declares_first_party(metadata.distribution(distribution))
    except metadata.PackageNotFoundError:
        return False


@dataclass
class Registration:
    kind: str
    name: str
    obj: Any
    distribution: str


@dataclass
class PluginInfo:
    distribution: str
    version: str | None
    modules: list[str] = field(default_factory=list)
    hooks: set[str] = field(default_factory=set)
    registers: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    import_seconds: float = 0.0
    first_party: bool = False  # from the distribution's metadata

    def as_dict(self) -> dict:
        return {
            "distribution": self.distribution,
            "version": self.version,
            "first_party": self.first_party,
            "modules": self.modules,
            "hooks": sorted(self.hooks),
            "registers": self.registers,
            "errors": self.errors,
            "loaded": not self.errors,
            "import_seconds": round(self.import_seconds, 3),
        }


def normalise_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def names_from_env(var: str) -> set[str] | None:
    value = os.environ.get(var, "").strip()
    if not value:
        return None
    return {normalise_name(v) for v in value.split(",") if v.strip()}


@dataclass
class PluginSettings:
    """Which plugins load and how strictly; defaults come from the environment."""

    strict: bool = False
    only: set[str] | None = None
    disable: set[str] = field(default_factory=set)
    # distributions not imported because indexing them (plugin_index) hung or killed the
    # process: distribution -> what happened
    skip: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "PluginSettings":
        return cls(
            strict=os.environ.get("DIFFPRIOR_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes"},
            only=names_from_env("DIFFPRIOR_PLUGINS"),
            disable=names_from_env("DIFFPRIOR_DISABLE_PLUGINS") or set(),
        )

    def allows(self, distribution: str, first_party: bool = False) -> bool:
        dist = normalise_name(distribution)
        if dist == CORE_DISTRIBUTION:
            return True
        if dist in self.disable:
            return False
        if "third-party" in self.disable and not first_party:
            return False
        return self.only is None or dist in self.only


class Registry:
    """Everything the loaded plugins contributed, by kind and name."""

    def __init__(self, settings: PluginSettings):
        self.settings = settings
        self.entries: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        self.disabled: set[str] = set()  # installed but not loaded (DIFFPRIOR_PLUGINS / _DISABLE_PLUGINS)
        self.problems: list[str] = []
        # names two or more distributions registered: kind -> name -> distributions; none of
        # them gets the plain name, each is reachable as "distribution:name"
        self.ambiguous: dict[str, dict[str, list[str]]] = {kind: {} for kind in KINDS}
        # what disabled distributions are known (from the plugin index) to register: (kind, name) -> distribution
        self.disabled_names: dict[tuple[str, str], list[str]] = {}
        # distributions that failed to import: distribution -> (the error, its entry point names);
        # what they would register is unknown, so an unknown type's message names them
        self.failed_imports: dict[str, tuple[str, list[str]]] = {}

    # -- lookups -----------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Any:
        try:
            return self.entries[kind][name].obj
        except KeyError:
            raise KeyError(self.unknown_message(kind, name)) from None

    def unknown_message(self, kind: str, name: str) -> str:
        """Why ``name`` is not a usable ``kind`` type: ambiguous, disabled, or unknown (did you mean)."""
        owners = self.ambiguous.get(kind, {}).get(name)
        if owners:
            picks = " or ".join(f"type = '{d}:{name}'" for d in owners)
            return (f"{kind} type {name!r} is registered by {len(owners)} distributions "
                    f"({', '.join(repr(d) for d in owners)}); pick one: {picks}")
        message = unknown_name_message(kind, name, self.names(kind))
        if self.failed_imports:
            return message + "; " + self._failed_import_hint(str(name))
        dists = self.disabled_names.get((kind, str(name)))
        if dists:
            if len(dists) == 1:
                return f"{message}; {name!r} comes from the plugin {dists[0]!r}, which is disabled"
            return f"{message}; {name!r} comes from disabled plugins: {', '.join(repr(d) for d in dists)}"
        if self.disabled:
            return f"{message}; disabled plugins (they may provide it): {', '.join(sorted(self.disabled))}"
        return message

    def _failed_import_hint(self, name: str) -> str:
        """The distributions that failed to import, the likely provider of ``name`` first
        (its entry point or distribution is named after it, as ``diffprior new-plugin`` makes them)."""
        wanted = normalise_name(name)

        def provides(dist: str, eps: list[str]) -> bool:
            return wanted in {normalise_name(e) for e in eps} or dist in {wanted, f"diffprior-{wanted}"}

        likely = [d for d, (_, eps) in self.failed_imports.items() if provides(d, eps)]
        if len(likely) == 1:
            return (f"{name!r} is probably provided by the plugin {likely[0]!r}, which failed to import: "
                    f"{self.failed_imports[likely[0]][0]}")
        listing = "; ".join(f"{d!r}: {err}" for d, (err, _) in sorted(self.failed_imports.items()))
        return f"plugins that failed to import (one may provide it): {listing}"

    def classes(self, kind: str) -> list[Any]:
        return [reg.obj for reg in self.entries[kind].values()]

    @property
    def priors(self):
        return self.entries["prior"]

    @property
    def variables(self):
        return self.entries["variable"]

    @property
    def terms(self):
        return self.entries["term"]

    @property
    def schedules(self):
        return self.entries["schedule"]

    @property
    def commands(self):
        return self.entries["command"]

    @property
    def datasets(self):
        return self.entries["dataset"]

    # -- problems ----------------------------------------------------------------------
    def problem(self, distribution: str, message: str, *, also: Iterable[str] = ()) -> None:
        """Report a problem of ``distribution`` (and of the ``also`` distributions involved)."""
        for dist in (distribution, *also):
            info = self.plugins.get(dist)
            if info is not None:
                info.errors.append(message)
        involved = [distribution, *also]
        who = "plugin" if len(involved) == 1 else "plugins"
        full = f"{who} {', '.join(repr(d) for d in involved)}: {message}"
        self.problems.append(full)
        if self.settings.strict:
            raise PluginError(full + "\n(strict plugin mode is on: DIFFPRIOR_STRICT_PLUGINS or --strict-plugins)")
        warnings.warn(full, PluginWarning, stacklevel=3)


def registered_name(kind: str, obj: Any) -> str:
    if kind in NAMED_OBJECT_KINDS:
        return obj.name
    type_name = getattr(obj, "type_name", None)
    if type_name is None:
        raise TypeError(f"{obj!r} is not a diffprior config class (it has no literal 'type' field)")
    if getattr(obj, "kind", kind) != kind:  # e.g. a TermConfig passed to register_priors
        raise TypeError(f"{obj.__name__} is a {obj.kind} config; register it in {HOOK_OF_KIND[obj.kind]}, "
                        f"not {HOOK_OF_KIND[kind]}")
    return type_name()


# Modules registered by code (tests, notebooks) rather than through entry points.
_extra_plugins: list[tuple[object, str]] = []
_registry: Registry | None = None
_settings_override: PluginSettings | None = None


def register_plugin(module: object, distribution: str) -> None:
    """Register a plugin module (or object with hook implementations) by code.

    It goes through exactly the same hooks as an installed distribution; ``distribution``
    is the name reported in ``diffprior plugins`` and in warnings.
    """
    _extra_plugins.append((module, normalise_name(distribution)))
    reset()


def unregister_plugin(distribution: str) -> None:
    _extra_plugins[:] = [(m, d) for m, d in _extra_plugins if d != normalise_name(distribution)]
    reset()


def configure(settings: PluginSettings | None) -> None:
    """Override the environment-derived plugin settings (used by CLI flags)."""
    global _settings_override
    _settings_override = settings
    reset()


def reset() -> None:
    global _registry
    _registry = None


def get_registry() -> Registry:
    global _registry
    if _registry is None:
        _registry = load(_settings_override or PluginSettings.from_env())
    return _registry


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


SLOW_IMPORT_SECONDS = 1.0  # `diffprior plugins` reports a distribution whose import takes longer


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


class _UserInterrupts:
    """Tells a Ctrl-C from the user apart from a plugin raising KeyboardInterrupt itself:
    the first propagates, the second is the plugin's failure."""

    def __init__(self):
        self.pressed = False
        self._previous = None

    def __enter__(self):
        import signal

        def handler(signum, frame):
            self.pressed = True
            raise KeyboardInterrupt

        try:
            self._previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc):
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _guarded(interrupts: _UserInterrupts, call: Callable[[], Any]) -> tuple[Any, str | None]:
    """``call()`` with everything a plugin can throw caught, BaseException included
    (sys.exit, KeyboardInterrupt): (value, None) or (None, what happened)."""
    try:
        return call(), None
    except PluginError:
        raise
    except KeyboardInterrupt as exc:
        if interrupts.pressed:
            raise
        return None, _describe(exc)
    except BaseException as exc:  # noqa: BLE001 - a plugin must not end the process
        return None, _describe(exc)


def _distribution_of(ep: metadata.EntryPoint) -> str:
    return normalise_name(ep.dist.name) if ep.dist is not None else ep.value.split(".")[0]


def installed_entry_points() -> dict[str, list[metadata.EntryPoint]]:
    """Entry points of group ``diffprior`` by distribution, the core first; nothing imported."""
    by_dist: dict[str, list[metadata.EntryPoint]] = {}
    seen = set()
    for ep in _entry_points():
        distribution = _distribution_of(ep)
        key = (distribution, ep.name, ep.value)
        if key in seen:  # editable installs can list an entry point twice
            continue
        seen.add(key)
        by_dist.setdefault(distribution, []).append(ep)
    return dict(sorted(by_dist.items(), key=lambda item: (item[0] != CORE_DISTRIBUTION, item[0])))


def load(settings: PluginSettings) -> Registry:
    """Import the allowed plugin distributions and collect what they register.

    Every import and hook call is guarded (a plugin that raises anything, sys.exit and
    KeyboardInterrupt included, is reported and skipped); names are given out only once
    every hook has run, so hook order (``tryfirst``/``trylast``) changes nothing:

    - a name the core registers is the core's; any other registration of it is refused;
    - likewise a name a loaded first-party distribution registers, against third parties;
    - a name two other distributions register is ambiguous: neither gets it, both are
      named, and a config picks one as ``"distribution:name"``.
    """
    with _UserInterrupts() as interrupts:
        loader = _Loader(settings, interrupts)
        loader.import_entry_points()
        loader.add_code_plugins()
        candidates = loader.call_hooks()
    _assign_names(loader.registry, candidates)
    return loader.registry


class _Loader:
    """One :func:`load`: the pluggy manager, the registry it fills, and which distribution
    each plugin module added to the manager belongs to."""

    def __init__(self, settings: PluginSettings, interrupts: _UserInterrupts):
        self.settings = settings
        self.interrupts = interrupts
        self.registry = Registry(settings)
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.dist_of_plugin: dict[str, str] = {}

    def info_of(self, distribution: str, first_party: bool) -> PluginInfo:
        return self.registry.plugins.setdefault(distribution, PluginInfo(distribution, _version(distribution),
                                                                         first_party=first_party))

    def import_entry_points(self) -> None:
        """Each installed distribution the settings allow, the core first."""
        for distribution, eps in installed_entry_points().items():
            first_party = declares_first_party(eps[0].dist)
            if not self.settings.allows(distribution, first_party):
                self.registry.disabled.add(distribution)
            elif distribution in self.settings.skip and distribution != CORE_DISTRIBUTION:
                self.skip(distribution, eps, first_party)
            else:
                self.import_distribution(distribution, eps, first_party)

    def skip(self, distribution: str, eps: list[metadata.EntryPoint], first_party: bool) -> None:
        """A distribution known to hang or kill the process on import: reported, not imported."""
        self.info_of(distribution, first_party)
        self.registry.failed_imports[distribution] = (self.settings.skip[distribution], [ep.name for ep in eps])
        self.registry.problem(distribution, f"not imported: {self.settings.skip[distribution]}")

    def import_distribution(self, distribution: str, eps: list[metadata.EntryPoint], first_party: bool) -> None:
        for ep in eps:
            start = time.perf_counter()
            module, error = _guarded(self.interrupts, ep.load)
            self.info_of(distribution, first_party).import_seconds += time.perf_counter() - start
            if error is not None:
                self.registry.failed_imports.setdefault(distribution, (error, [e.name for e in eps]))
                self.registry.problem(distribution, f"failed to import entry point {ep.name} = {ep.value}: {error}")
                continue
            self.add(module, distribution, f"{distribution}:{ep.name}", first_party)

    def add_code_plugins(self) -> None:
        """The modules given to :func:`register_plugin`, under the same settings."""
        for module, distribution in _extra_plugins:
            first_party = _installed_first_party(distribution)
            if self.settings.allows(distribution, first_party):
                self.add(module, distribution, f"{distribution}:{getattr(module, '__name__', id(module))}", first_party)
            else:
                self.registry.disabled.add(distribution)

    def add(self, module: object, distribution: str, plugin_name: str, first_party: bool) -> None:
        info = self.info_of(distribution, first_party)
        info.modules.append(getattr(module, "__name__", plugin_name))
        try:
            self.manager.register(module, name=plugin_name)
        except Exception as exc:  # pluggy.PluginValidationError, duplicate plugin names
            self.registry.problem(distribution, f"invalid hook implementation in {plugin_name}: {exc}")
            return
        self.dist_of_plugin[plugin_name] = distribution
        self.report_unknown_hooks(module, distribution, plugin_name)

    def report_unknown_hooks(self, module: object, distribution: str, plugin_name: str) -> None:
        # pluggy accepts implementations of hooks that no spec declares (a typo such as
        # register_term); they would never be called, so say so instead of staying silent
        for caller in self.manager.get_hookcallers(module) or []:
            if not caller.has_spec():
                import difflib

                close = difflib.get_close_matches(caller.name, HOOK_OF_KIND.values(), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.registry.problem(distribution, f"{plugin_name} implements {caller.name!r}, which is not a "
                                                    f"diffprior hook{hint}; hooks: {', '.join(HOOK_OF_KIND.values())}")

    def call_hooks(self) -> list[Registration]:
        """Every register_* hook of every added module, kind by kind: what they register."""
        candidates: list[Registration] = []
        for kind in KINDS:
            hook = getattr(self.manager.hook, HOOK_OF_KIND[kind])
            for impl in hook.get_hookimpls():
                distribution = self.dist_of_plugin.get(impl.plugin_name, impl.plugin_name)
                self.registry.plugins[distribution].hooks.add(HOOK_OF_KIND[kind])
                register = _make_register(kind, distribution, candidates)
                _, error = _guarded(self.interrupts,
                                    lambda: impl.function(*[{"register": register}[n] for n in impl.argnames]))
                if error is not None:
                    self.registry.problem(distribution, f"hook {HOOK_OF_KIND[kind]} raised {error}")
        return candidates


def _make_register(kind: str, distribution: str, candidates: list[Registration]) -> Callable[[Any], None]:
    def register(obj: Any) -> None:
        name = registered_name(kind, obj)
        if ":" in name:
            raise ValueError(f"{kind} name {name!r} contains ':', which is kept for 'distribution:name'")
        candidates.append(Registration(kind, name, obj, distribution))

    return register


def _assign_names(registry: Registry, candidates: list[Registration]) -> None:
    by_name: dict[tuple[str, str], list[Registration]] = {}
    for reg in candidates:
        by_name.setdefault((reg.kind, reg.name), []).append(reg)
    for (kind, name), regs in by_name.items():
        dists = list(dict.fromkeys(r.distribution for r in regs))
        owner = None
        if CORE_DISTRIBUTION in dists:
            owner, reserved_by = CORE_DISTRIBUTION, "the core (diffprior)"
        else:
            first = [d for d in dists if registry.plugins[d].first_party]
            if len(first) == 1:
                owner, reserved_by = first[0], f"the first-party distribution {first[0]!r}"
            elif len(dists) == 1:
                owner = dists[0]
        if owner is not None:
            mine = [r for r in regs if r.distribution == owner]
            _grant(registry, mine[0], name)
            if len(mine) > 1:
                registry.problem(owner, f"registers {kind} {name!r} {len(mine)} times; keeping the first")
            for dist in dists:
                if dist != owner:
                    registry.problem(dist, f"{kind} {name!r} is reserved by {reserved_by}; not registered. "
                                           f"Rename it in {dist}")
            continue
        # two or more distributions of equal standing: neither silently wins
        registry.ambiguous[kind][name] = dists
        for dist in dists:
            reg = next(r for r in regs if r.distribution == dist)
            _grant(registry, reg, f"{dist}:{name}", qualify=True)
        picks = " or ".join(f"type = '{d}:{name}'" for d in dists)
        registry.problem(dists[0], f"{kind} {name!r} is registered by {', '.join(repr(d) for d in dists)}, so "
                                   f"neither gets that name; a config picks one with {picks}, or disable one "
                                   f"(--disable-plugin {dists[-1]})", also=dists[1:])


def _grant(registry: Registry, reg: Registration, name: str, qualify: bool = False) -> None:
    obj = _qualified(reg.kind, reg.obj, name) if qualify else reg.obj
    registry.entries[reg.kind][name] = Registration(reg.kind, name, obj, reg.distribution)
    registry.plugins[reg.distribution].registers.setdefault(reg.kind, []).append(name)


def _qualified(kind: str, obj: Any, name: str) -> Any:
    """The same command, dataset or config class under the name ``distribution:name``."""
    if kind in NAMED_OBJECT_KINDS:
        import dataclasses

        return dataclasses.replace(obj, name=name)
    from typing import Literal

    from pydantic import create_model

    return create_model(obj.__name__, __base__=obj, __module__=obj.__module__,
                        type=(Literal[name], name))  # type: ignore[valid-type]
