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
import traceback
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import PluginError, PluginWarning, unknown_name_message  # public in diffprior.errors

ENTRY_POINT_GROUP = "diffprior"
CORE_DISTRIBUTION = "diffprior"
# A distribution is first-party when its own metadata says so, with this entry point:
#   [project.entry-points."diffprior.distribution"]
#   first-party = "diffprior"
FIRST_PARTY_GROUP, FIRST_PARTY_NAME = "diffprior.distribution", "first-party"
KINDS = ("prior", "variable", "term", "schedule", "command")
HOOK_OF_KIND = {kind: f"register_{kind}s" for kind in KINDS}


def declares_first_party(dist: "metadata.Distribution | None") -> bool:
    """Whether a distribution's metadata marks it as part of diffprior (see FIRST_PARTY_GROUP)."""
    if dist is None:
        return False
    if _normalise(dist.metadata["Name"] or "") == CORE_DISTRIBUTION:
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
        }


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _split_env(var: str) -> set[str] | None:
    value = os.environ.get(var, "").strip()
    if not value:
        return None
    return {_normalise(v) for v in value.split(",") if v.strip()}


@dataclass
class PluginSettings:
    """Which plugins load and how strictly; defaults come from the environment."""

    strict: bool = False
    only: set[str] | None = None
    disable: set[str] = field(default_factory=set)

    @classmethod
    def from_env(cls) -> "PluginSettings":
        return cls(
            strict=os.environ.get("DIFFPRIOR_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes"},
            only=_split_env("DIFFPRIOR_PLUGINS"),
            disable=_split_env("DIFFPRIOR_DISABLE_PLUGINS") or set(),
        )

    def allows(self, distribution: str, first_party: bool = False) -> bool:
        dist = _normalise(distribution)
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

    # -- lookups -----------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Any:
        try:
            return self.entries[kind][name].obj
        except KeyError:
            raise KeyError(unknown_name_message(kind, name, self.names(kind))) from None

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

    # -- problems ----------------------------------------------------------------------
    def problem(self, distribution: str, message: str) -> None:
        info = self.plugins.get(distribution)
        if info is not None:
            info.errors.append(message)
        full = f"plugin {distribution!r}: {message}"
        self.problems.append(full)
        if self.settings.strict:
            raise PluginError(full + "\n(strict plugin mode is on: DIFFPRIOR_STRICT_PLUGINS or --strict-plugins)")
        warnings.warn(full, PluginWarning, stacklevel=3)


def registered_name(kind: str, obj: Any) -> str:
    if kind == "command":
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
    _extra_plugins.append((module, _normalise(distribution)))
    reset()


def unregister_plugin(distribution: str) -> None:
    _extra_plugins[:] = [(m, d) for m, d in _extra_plugins if d != _normalise(distribution)]
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


def load(settings: PluginSettings) -> Registry:
    registry = Registry(settings)
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    dist_of_plugin: dict[str, str] = {}

    def add(module: object, distribution: str, plugin_name: str, first_party: bool) -> None:
        info = registry.plugins.setdefault(distribution, PluginInfo(distribution, _version(distribution),
                                                                    first_party=first_party))
        info.modules.append(getattr(module, "__name__", plugin_name))
        try:
            manager.register(module, name=plugin_name)
        except Exception as exc:  # pluggy.PluginValidationError, duplicate plugin names
            registry.problem(distribution, f"invalid hook implementation in {plugin_name}: {exc}")
            return
        dist_of_plugin[plugin_name] = distribution
        # pluggy accepts implementations of hooks that no spec declares (a typo such as
        # register_term); they would never be called, so say so instead of staying silent
        for caller in manager.get_hookcallers(module) or []:
            if not caller.has_spec():
                import difflib

                close = difflib.get_close_matches(caller.name, HOOK_OF_KIND.values(), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                registry.problem(distribution, f"{plugin_name} implements {caller.name!r}, which is not a diffprior "
                                               f"hook{hint}; hooks: {', '.join(HOOK_OF_KIND.values())}")

    seen_eps = set()
    # the core registers first, so its built-in names cannot be taken over by a plugin
    for ep in sorted(_entry_points(), key=lambda ep: ep.dist is None or _normalise(ep.dist.name) != CORE_DISTRIBUTION):
        distribution = _normalise(ep.dist.name) if ep.dist is not None else ep.value.split(".")[0]
        key = (distribution, ep.name, ep.value)
        if key in seen_eps:  # editable installs can list an entry point twice
            continue
        seen_eps.add(key)
        first_party = declares_first_party(ep.dist)
        if not settings.allows(distribution, first_party):
            registry.disabled.add(distribution)
            continue
        plugin_name = f"{distribution}:{ep.name}"
        try:
            module = ep.load()
        except Exception as exc:
            registry.plugins.setdefault(distribution, PluginInfo(distribution, _version(distribution),
                                                                 first_party=first_party))
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            registry.problem(distribution, f"failed to import entry point {ep.name} = {ep.value}: {last}")
            continue
        add(module, distribution, plugin_name, first_party)

    for module, distribution in _extra_plugins:
        first_party = _installed_first_party(distribution)
        if settings.allows(distribution, first_party):
            add(module, distribution, f"{distribution}:{getattr(module, '__name__', id(module))}", first_party)
        else:
            registry.disabled.add(distribution)

    for kind in KINDS:
        hook = getattr(manager.hook, HOOK_OF_KIND[kind])
        # get_hookimpls() lists in registration order: the first to claim a name keeps it
        for impl in hook.get_hookimpls():
            distribution = dist_of_plugin.get(impl.plugin_name, impl.plugin_name)
            info = registry.plugins[distribution]
            info.hooks.add(HOOK_OF_KIND[kind])
            register = _make_register(registry, kind, distribution, info)
            try:
                impl.function(*[{"register": register}[name] for name in impl.argnames])
            except PluginError:
                raise
            except Exception as exc:
                last = traceback.format_exception_only(type(exc), exc)[-1].strip()
                registry.problem(distribution, f"hook {HOOK_OF_KIND[kind]} raised {last}")
    return registry


def _make_register(registry: Registry, kind: str, distribution: str, info: PluginInfo) -> Callable[[Any], None]:
    def register(obj: Any) -> None:
        name = registered_name(kind, obj)
        existing = registry.entries[kind].get(name)
        if existing is not None:
            registry.problem(
                distribution,
                f"{kind} {name!r} is already registered by {existing.distribution!r}; "
                f"keeping the one from {existing.distribution!r}. Uninstall one of them or disable "
                f"one with DIFFPRIOR_DISABLE_PLUGINS={distribution}",
            )
            return
        registry.entries[kind][name] = Registration(kind, name, obj, distribution)
        info.registers.setdefault(kind, []).append(name)

    return register
