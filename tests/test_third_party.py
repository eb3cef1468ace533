"""A third-party plugin installed next to the core: discovered, listed, in the schema, and
usable in one config with a core term.

The core and contrib/diffprior-edges are pip-installed (from copies of their folders) into a
temporary target that comes first on PYTHONPATH; the subprocesses reuse this interpreter's
torch. Only the core and diffprior-edges load (DIFFPRIOR_PLUGINS), so the test does not
depend on the other plugins of the checkout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from diffprior.testing import PluginSandbox

ROOT = Path(__file__).resolve().parents[1]
EDGES = ROOT / "contrib" / "diffprior-edges"
EXAMPLE = EDGES / "examples" / "match-and-edges.toml"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> PluginSandbox:
    root = tmp_path_factory.mktemp("third-party")
    core = root / "diffprior-core"
    core.mkdir()
    for item in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / item).exists():
            shutil.copy(ROOT / item, core / item)
    shutil.copytree(ROOT / "core", core / "core", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    box = PluginSandbox(root)
    box.pip_install(core, EDGES)
    return box


def only_edges(box: PluginSandbox, **env):
    return box.env(DIFFPRIOR_PLUGINS="diffprior-edges", **env)


def test_the_installed_copies_are_the_ones_imported(sandbox):
    proc = sandbox.python("-c", "import diffprior, diffprior_edges; print(diffprior.__file__); print(diffprior_edges.__file__)")
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.split():
        assert Path(line).is_relative_to(sandbox.site), line


def test_plugins_lists_the_contrib_distribution(sandbox):
    proc = sandbox.cli("plugins", "--json", env=only_edges(sandbox))
    assert proc.returncode == 0, proc.stderr
    plugins = {p["distribution"]: p for p in json.loads(proc.stdout)}
    edges = plugins["diffprior-edges"]
    assert edges["loaded"] and not edges["first_party"] and edges["version"] == "0.1.0"
    assert sorted(edges["registers"]["term"]) == ["edges", "tv"]
    assert "match" in plugins["diffprior"]["registers"]["term"]
    text = sandbox.cli("plugins", env=only_edges(sandbox)).stdout
    assert "diffprior-edges 0.1.0 (third-party, ok)" in text


def test_schema_includes_the_contrib_configs(sandbox):
    proc = sandbox.cli("schema", env=only_edges(sandbox))
    assert proc.returncode == 0, proc.stderr
    defs = json.loads(proc.stdout)["$defs"]
    types = {d["properties"]["type"].get("const") for d in defs.values() if "type" in d.get("properties", {})}
    assert {"edges", "tv", "match"} <= types


def test_a_config_combining_match_and_edges_runs(sandbox, tmp_path):
    out = tmp_path / "run"
    proc = sandbox.cli("run", str(EXAMPLE), "--set", "optimizer.steps=40", "--out", str(out), "--quiet",
                       env=only_edges(sandbox))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    means = metrics["metrics_mean"]
    assert {"match.masked_mse", "edges.edge_correlation", "tv.tv_per_pixel"} <= set(means)
    assert len(metrics["metrics"]["edges.edge_correlation"]) == 2  # one figure per sample
    assert (out / "samples.png").exists() and (out / "config.resolved.toml").exists()


@pytest.mark.parametrize("how", ["flag", "env", "third-party"])
def test_disabling_the_plugin_removes_its_terms(sandbox, how):
    env = only_edges(sandbox)
    args = ["validate", str(EXAMPLE)]
    if how == "flag":
        args = ["--disable-plugin", "diffprior-edges", *args]
    else:
        env["DIFFPRIOR_DISABLE_PLUGINS"] = "diffprior-edges" if how == "env" else "third-party"
    proc = sandbox.cli(*args, env=env)
    assert proc.returncode == 2, proc.stderr
    # the error points at the first term that is no longer known
    assert "terms.1.type: unknown term type 'edges'" in proc.stderr and "Traceback" not in proc.stderr
    assert sandbox.cli("validate", str(EXAMPLE), env=only_edges(sandbox)).returncode == 0
