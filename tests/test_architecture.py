"""The structure the core promises: no import cycles, and validation that uses the registry
it is given instead of discovering plugins behind the caller's back."""

from __future__ import annotations

import ast
from importlib import util
from importlib.metadata import entry_points
from pathlib import Path

import pytest


def _installed_packages() -> list[str]:
    """The core plus the top-level package of every installed ``diffprior`` entry point."""
    found = {"diffprior"}
    for ep in entry_points(group="diffprior"):
        found.add(ep.value.split(":", 1)[0].strip().split(".", 1)[0])
    return sorted(found)


PACKAGES = _installed_packages()

# Known edges still to clean, owned elsewhere; strict, so each entry goes once it is fixed.
KNOWN_CYCLES: dict[str, list[list[str]]] = {}
KNOWN_PRIVATE_IMPORTS: set[str] = set()


def _modules(package: str) -> dict[str, Path]:
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed")
    root = Path(list(spec.submodule_search_locations)[0])
    found = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).with_suffix("")
        parts = [package, *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of the same package that ``name`` imports, at the top or inside a function."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod; `from pkg.mod import f` imports pkg.mod
            candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in candidates:
            while target and target not in modules:  # `import a.b.c` where only a.b is ours
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
    return targets


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package):
    modules = _modules(package)
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # the package's own __init__ is imported by everything below it; an edge back into it is not a cycle
    for name in graph:
        graph[name].discard(package)
    assert _cycles(graph) == KNOWN_CYCLES.get(package, []), f"import cycles in {package} (function-level imports count too)"


def test_every_installed_plugin_is_checked():
    names = {ep.value.split(":", 1)[0].split(".", 1)[0] for ep in entry_points(group="diffprior")}
    assert "diffprior" in PACKAGES and names <= set(PACKAGES)
    assert "diffprior_diffusers" in names, "the first-party plugins are installed in this environment"


def _private_imports(name: str, path: Path, project: dict[str, Path]) -> list[str]:
    """``from x import _y`` in module ``name`` where x is another module of a project package."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = node.module or ""
        if node.level:
            anchor = here.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        if base not in project or base == name:
            continue
        for alias in node.names:
            private = alias.name.startswith("_") and not alias.name.startswith("__")
            if private and f"{base}.{alias.name}" not in project:
                found.append(f"{name}:{node.lineno}: from {base} import {alias.name}")
    return found


def _project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        spec = util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            modules.update(_modules(package))
    return modules


def test_no_underscore_name_crosses_modules():
    project = _project_modules()
    found = [hit for name, path in sorted(project.items()) for hit in _private_imports(name, path, project)]
    unlisted = {hit.split(":")[0] + ":" + hit.split(":", 2)[2] for hit in found}
    assert unlisted == KNOWN_PRIVATE_IMPORTS, "private names imported from another module:\n" + "\n".join(found)


def test_the_private_import_finder_finds_one(tmp_path):
    source = tmp_path / "b.py"
    source.write_text("from .a import _hidden, shown\nfrom pkg.a import __version__\nfrom .b import _mine\n")
    project = {"pkg.a": tmp_path / "a.py", "pkg.b": source}
    assert _private_imports("pkg.b", source, project) == ["pkg.b:1: from pkg.a import _hidden"]


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_validation_uses_the_registry_it_is_given(monkeypatch):
    from diffprior.plugins import registry as plugins
    from diffprior.config.run_config import validate_config

    registry = plugins.get_registry()

    def no_discovery(*args, **kwargs):
        raise AssertionError("validation discovered plugins although a registry was given")

    monkeypatch.setattr(plugins, "_registry", None)
    monkeypatch.setattr(plugins, "load", no_discovery)
    data = {
        "prior": {"type": "gaussian", "shape": [1, 4, 4]},
        "prior_weight": {"linear": [1.0, 0.5]},
        "terms": [{"type": "match", "weight": 0.5, "clip": {"max_norm": 0.1}}],
        "optimizer": {"lr": {"type": "exponential", "start": 0.1, "end": 0.01}},
    }
    config = validate_config(data, registry=registry)
    assert config.terms[0].weight(0.3) == 0.5
    assert config.terms[0].resolved_clip().value(0.0) == 0.1
    assert config.prior_weight(1.0) == 0.5


def test_builtin_schedules_resolve_without_plugin_discovery(monkeypatch):
    from diffprior.plugins import registry as plugins
    from diffprior.config.options import Options
    from diffprior.method.schedules import Linear, parse_schedule

    def no_discovery(*args, **kwargs):
        raise AssertionError("a built-in schedule triggered plugin discovery")

    monkeypatch.setattr(plugins, "_registry", None)
    monkeypatch.setattr(plugins, "load", no_discovery)
    assert parse_schedule({"linear": [1, 0]}) == Linear(start=1, end=0)
    options = Options(timesteps=300, prior_weight={"cosine-linear": [1.0, 0.0]}, optimizer={"lr": 0.5})
    assert options.timesteps(0.7) == 300 and options.optimizer.lr(0.0) == 0.5


def test_a_plugin_schedule_comes_from_the_given_registry():
    """A name that is not built in is looked up in the registry of the validation context."""
    from typing import Literal

    from diffprior.plugins.registry import PluginSettings, Registration, Registry
    from diffprior.method.schedules import Schedule, parse_schedule

    class Step(Schedule):
        type: Literal["step"] = "step"
        at: float = 0.5

        def __call__(self, s, step=0, steps=1):
            return float(s >= self.at)

    registry = Registry(PluginSettings())
    registry.entries["schedule"]["step"] = Registration("schedule", "step", Step, "test")
    assert parse_schedule({"step": [0.25]}, registry=registry)(0.3) == 1.0
    with pytest.raises(ValueError, match="unknown schedule type 'step'"):
        parse_schedule({"type": "step"}, registry=Registry(PluginSettings()))
