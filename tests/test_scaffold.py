"""``diffprior new-plugin``: the generated distribution installs, is discovered, and passes
its own (conformance-kit) tests without edits."""

from __future__ import annotations

import json
import re

import pytest

from diffprior.cli.main import main
from diffprior import UsageError
from diffprior.plugins.scaffold import PluginNames, new_plugin
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


# ----------------------------------------------------------------------------- --type
def test_the_term_type_can_differ_from_the_distribution_name(tmp_path):
    names = PluginNames.from_name("smoothing", "total-variation")
    assert (names.distribution, names.package, names.term, names.class_prefix) == (
        "diffprior-smoothing", "diffprior_smoothing", "total-variation", "TotalVariation")
    target, _ = new_plugin("smoothing", tmp_path / "p", term="total-variation")
    plugin = (target / "diffprior_smoothing" / "plugin.py").read_text()
    assert 'class TotalVariationConfig(TermConfig):' in plugin
    assert 'type: Literal["total-variation"] = "total-variation"' in plugin
    # the entry point is named after the term, so an error about the type can name this plugin
    assert '[project.entry-points.diffprior]\ntotal-variation = "diffprior_smoothing.plugin"' in (
        target / "pyproject.toml").read_text()


@pytest.mark.parametrize("bad", ["Total Variation", "tv!", "2d-tv"])
def test_an_unusable_type_is_a_usage_error(bad, tmp_path, capsys):
    assert main(["new-plugin", "smoothing", "--type", bad, "--dir", str(tmp_path / "p")]) == 2
    assert "term type" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_a_type_an_installed_distribution_registers_is_warned_about(tmp_path, capsys):
    # contrib/diffprior-edges (installed in the development environment) registers `tv`
    assert main(["new-plugin", "smoothing", "--type", "tv", "--dir", str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err
    assert "term type 'tv' is already registered by the installed distribution 'diffprior-edges'" in err
    assert "--type smoothing" in err  # the plugin's own name is free: suggested
    assert (tmp_path / "p" / "pyproject.toml").exists()  # generated all the same


def test_when_the_name_is_taken_too_a_numbered_free_type_is_suggested(tmp_path, capsys):
    assert main(["new-plugin", "tv", "--dir", str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err
    assert "'diffprior-edges'" in err and "--type tv-2" in err


def test_a_core_type_is_warned_about_and_a_free_type_is_not(tmp_path, capsys):
    assert main(["new-plugin", "mine", "--type", "match", "--dir", str(tmp_path / "a")]) == 0
    assert "term type 'match' is already registered by the installed distribution 'diffprior'" in capsys.readouterr().err
    assert main(["new-plugin", "mine", "--type", "no-such-type-yet", "--dir", str(tmp_path / "b")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_generated_docstrings_say_what_to_change(tmp_path):
    target, _ = new_plugin("smoothing", tmp_path / "p", term="total-variation")
    config_doc = (target / "diffprior_smoothing" / "plugin.py").read_text().split('class TotalVariationConfig')[1]
    first_line = config_doc.split('"""')[1].splitlines()[0]
    assert first_line.startswith("CHANGE this docstring") and "'total-variation'" not in first_line
    assert "``total-variation``" in first_line
    term_doc = (target / "diffprior_smoothing" / "term.py").read_text().split("class TotalVariationTerm")[1]
    assert term_doc.split('"""')[1].startswith("CHANGE: compute your constraint in ``log_c``")
    assert "replace it with your constraint" in (target / "README.md").read_text()
