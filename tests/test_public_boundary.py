"""The core's boundary: the distributions in plugins/ and contrib/, and the package that
``diffprior new-plugin`` generates, import from diffprior only what docs/hooks.md lists as
public, so the core can change everything else freely.

Plugin tests may reach further (the CLI's ``main``, internals under test); the packages
users install may not.
"""

import ast
import re
from pathlib import Path

import pytest

import diffprior

REPO = Path(__file__).resolve().parents[1]
HOOKS_DOC = REPO / "docs" / "hooks.md"

# module → the names a plugin may import from it (documented in docs/hooks.md, "Where things are")
PUBLIC = {
    "diffprior": set(diffprior.__all__) | {"distributed"},
    "diffprior.bases": {"PriorConfig", "VariableConfig", "TermConfig", "BuildContext", "ExistingPath", "resolve_path"},
    "diffprior.schedules": {"Schedule", "ScheduleValue", "parse_schedule"},
    "diffprior.clipping": {"ClipPolicy"},
    "diffprior.command": {"Command", "UsageError", "ConfigError", "subcommands", "positive_int"},
    "diffprior.errors": {"ConfigError", "UsageError", "PluginError", "NonFiniteError"},
    "diffprior.terms": {"Term", "MaskedGaussian", "check_image_shape"},
    "diffprior.sharding": {"Shard", "shard_range", "process_rows", "batches_of", "shard_argument", "missing_shards",
                           "read_part"},
    "diffprior.distributed": {"setup", "gather", "all_sum", "barrier", "current"},
    "diffprior.config_files": {"load_config", "read_config_file", "apply_overrides"},
    "diffprior.hookspecs": {"hookimpl"},
    "diffprior.lazy": {"lazy_exports"},
    "diffprior.testing": None,  # the conformance kit (docs/conformance-kit.md): all of it
}


def distribution_sources():
    for group in ("plugins", "contrib"):
        for path in sorted((REPO / group).glob("*/*/**/*.py")):
            parts = path.relative_to(REPO / group).parts
            if parts[1] not in ("tests", "build") and not any(p.startswith(".") for p in parts):
                yield path
    yield from sorted((REPO / "core" / "diffprior" / "templates" / "plugin" / "__package__").glob("*.py.tmpl"))


def core_imports(path: Path):
    """(line, module, name or None) of every import from diffprior in a source file."""
    source = re.sub(r"\{\{\w+\}\}", "X", path.read_text())  # a template's placeholders
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "diffprior":
            for alias in node.names:
                yield node.lineno, node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "diffprior":
                    yield node.lineno, alias.name, None


def violations(paths, root: Path = REPO):
    found = []
    for path in paths:
        for line, module, name in core_imports(path):
            allowed = PUBLIC.get(module, set())
            if allowed is None or (name is None and module in PUBLIC) or (name and name in allowed):
                continue
            what = f"{module}.{name}" if name else module
            found.append(f"{path.relative_to(root)}:{line}: {what}")
    return found


def test_distributions_import_only_the_documented_public_api():
    paths = list(distribution_sources())
    assert len(paths) > 30  # every plugins/ and contrib/ package was found
    assert violations(paths) == []


def test_the_check_catches_an_import_of_a_core_internal(tmp_path):
    plugin = tmp_path / "plugin.py"
    plugin.write_text("from diffprior import Term\nfrom diffprior.optimizer import _PriorLoss\n"
                      "def f():\n    from diffprior.sharding import merge_runs\n    import diffprior.runner\n")
    found = [v.split(": ")[1] for v in violations([plugin], root=tmp_path)]
    assert found == ["diffprior.optimizer._PriorLoss", "diffprior.sharding.merge_runs", "diffprior.runner"]


@pytest.mark.parametrize("module", sorted(m for m in PUBLIC if m != "diffprior"))
def test_every_public_module_is_documented_and_its_names_exist(module):
    import importlib

    documented = f"`{module}`" in HOOKS_DOC.read_text()
    assert documented, f"docs/hooks.md does not list {module}"
    names = PUBLIC[module] or ()
    mod = importlib.import_module(module)
    assert [n for n in names if not hasattr(mod, n)] == []
