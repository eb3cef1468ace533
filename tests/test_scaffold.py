"""``diffprior new-plugin``: the generated distribution installs, is discovered, and passes
its own (conformance-kit) tests without edits."""

from __future__ import annotations

import json
import re

import pytest

from diffprior.cli import main
from diffprior.commands import UsageError
from diffprior.scaffold import PluginNames, new_plugin
from diffprior.testing import PluginSandbox


@pytest.mark.parametrize(
    "raw, package, classes",
    [("sharpness", "diffprior_sharpness", "Sharpness"), ("diffprior-edge-aware", "diffprior_edge_aware", "EdgeAware"),
     ("Blur_2", "diffprior_blur_2", "Blur2")],
)
def test_names_are_derived_from_the_plugin_name(raw, package, classes):
    names = PluginNames.from_name(raw)
    assert (names.package, names.class_prefix) == (package, classes)
    assert names.distribution == "diffprior-" + names.term


@pytest.mark.parametrize("bad", ["", "2fast", "my plugin", "a--b", "tv!"])
def test_unusable_names_are_usage_errors(bad):
    with pytest.raises(UsageError, match="lower-case letters"):
        PluginNames.from_name(bad)


def test_every_placeholder_is_filled_and_the_python_compiles(tmp_path):
    target, written = new_plugin("sharpness", tmp_path / "p")
    rel = sorted(str(p.relative_to(target)) for p in written)
    assert rel == ["README.md", "diffprior_sharpness/__init__.py", "diffprior_sharpness/plugin.py",
                   "diffprior_sharpness/term.py", "pyproject.toml", "tests/test_diffprior_sharpness.py"]
    for path in written:
        text = path.read_text()
        assert not re.search(r"\{\{\s*\w+\s*\}\}", text), path
        if path.suffix == ".py":
            compile(text, str(path), "exec")
    assert '[project.entry-points.diffprior]\nsharpness = "diffprior_sharpness.plugin"' in (target / "pyproject.toml").read_text()


def test_a_non_empty_folder_is_refused_without_force(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["new-plugin", "sharpness", "--dir", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["new-plugin", "sharpness", "--dir", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "keep.txt").read_text() == "mine" and (tmp_path / "pyproject.toml").exists()


def test_a_generated_plugin_installs_is_discovered_and_passes_its_tests(tmp_path):
    plugin = tmp_path / "diffprior-sharpness"
    assert main(["new-plugin", "sharpness", "--dir", str(plugin)]) == 0
    box = PluginSandbox(tmp_path / "sandbox")
    box.pip_install(plugin)
    env = box.env(DIFFPRIOR_PLUGINS="diffprior-sharpness")

    listing = box.cli("plugins", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    info = {p["distribution"]: p for p in json.loads(listing.stdout)}["diffprior-sharpness"]
    assert info["loaded"] and info["registers"] == {"term": ["sharpness"]}

    config = tmp_path / "run.toml"
    config.write_text('[prior]\ntype = "gaussian"\nshape = [1, 8, 8]\n\n'
                      '[[terms]]\ntype = "match"\n\n[[terms]]\ntype = "sharpness"\ntarget = 0.5\n')
    validated = box.cli("validate", str(config), env=env)
    assert validated.returncode == 0, validated.stderr
    assert "match, sharpness" in validated.stdout

    tests = box.python("-m", "pytest", "-q", "-p", "no:cacheprovider", str(plugin / "tests"), cwd=plugin, env=env)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout
