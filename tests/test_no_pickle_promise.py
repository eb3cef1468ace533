"""The promise "no pickle on user files, no code from data" holds for every line of shipped
code (the core, the plugins, contrib): checked on the syntax tree, so it cannot regress
unnoticed. Tests, benchmarks and scripts are not shipped and not checked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def violations(source: str, filename: str = "<code>") -> list[str]:
    """Lines of ``source`` that could run code from a data file."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in PICKLE_MODULES:
                    found.append(f"{where}: imports {name}")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        dotted = ast.unparse(func)
        if isinstance(func, ast.Name) and func.id in ("eval", "exec", "__import__", "compile"):
            found.append(f"{where}: calls {func.id}()")
        elif dotted == "torch.load" and not _is_true(_keyword(node, "weights_only")):
            found.append(f"{where}: torch.load without weights_only=True")
        elif dotted in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"):
            found.append(f"{where}: {dotted} (use yaml.safe_load)")
        elif dotted.endswith(("np.load", "numpy.load")) and _is_true(_keyword(node, "allow_pickle")):
            found.append(f"{where}: {dotted} with allow_pickle=True")
        elif dotted.endswith(("read_pickle", "torch.jit.load")):
            found.append(f"{where}: {dotted}")
    return found


def shipped_files() -> list[Path]:
    files = sorted((ROOT / "core" / "diffprior").rglob("*.py"))
    for group in ("plugins", "contrib"):
        for dist in sorted((ROOT / group).glob("*/")):
            for package in sorted(p for p in dist.iterdir() if (p / "__init__.py").exists()):
                files += sorted(f for f in package.rglob("*.py") if "templates" not in f.parts)
    return files


def test_shipped_code_never_unpickles_or_evaluates():
    files = shipped_files()
    assert len(files) > 30 and any("diffprior_unet" in str(f) for f in files)
    problems = [v for f in files for v in violations(f.read_text(), str(f.relative_to(ROOT)))]
    assert not problems, "code that could run a data file's contents:\n" + "\n".join(problems)


@pytest.mark.parametrize("line", [
    "import torch\nstate = torch.load(path)",
    "import torch\nstate = torch.load(path, weights_only=False)",
    "import pickle",
    "from pickle import loads",
    "import yaml\ndata = yaml.load(text, Loader=yaml.Loader)",
    "value = eval(text)",
    "exec(code)",
    "import numpy as np\na = np.load(p, allow_pickle=True)",
])
def test_the_check_catches_each_way_of_running_data(line):
    assert violations(line)


@pytest.mark.parametrize("line", [
    "import torch\nstate = torch.load(path, map_location='cpu', weights_only=True)",
    "import yaml\ndata = yaml.safe_load(text)",
    "model.eval()",
    "import numpy as np\na = np.load(p, allow_pickle=False)",
])
def test_the_check_allows_the_safe_forms(line):
    assert not violations(line)
