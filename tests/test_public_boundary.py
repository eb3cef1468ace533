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

# module → the names a plugin may import from it (docs/hooks.md, "Where things are"): one import
# path per public name. None: all of the module (the conformance kit).
PUBLIC = {
    "diffprior": set(diffprior.__all__),
    "diffprior.testing": None,
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
    plugin.write_text("from diffprior import Term\nfrom diffprior.method.optimizer import _PriorLoss\n"
                      "def f():\n    from diffprior.runs.sharding import merge_runs\n    import diffprior.runs.runner\n")
    found = [v.split(": ")[1] for v in violations([plugin], root=tmp_path)]
    assert found == ["diffprior.method.optimizer._PriorLoss", "diffprior.runs.sharding.merge_runs", "diffprior.runs.runner"]


@pytest.mark.parametrize("module", sorted(m for m in PUBLIC if m != "diffprior"))
def test_every_public_module_is_documented_and_its_names_exist(module):
    import importlib

    documented = f"`{module}`" in HOOKS_DOC.read_text()
    assert documented, f"docs/hooks.md does not list {module}"
    names = PUBLIC[module] or ()
    mod = importlib.import_module(module)
    assert [n for n in names if not hasattr(mod, n)] == []


def test_every_public_name_is_documented():
    table = HOOKS_DOC.read_text().split("Where things are", 1)[1].split("\n## ", 1)[0]
    assert [name for name in diffprior.__all__ if f"`{name}" not in table and name != "__version__"] == []
