"""Broken plugins leave diffprior working, with a warning naming them; strict mode fails.

Each broken plugin is a small installed distribution (files, METADATA, entry_points.txt)
in a sandbox on PYTHONPATH, so discovery goes through real entry points; the CLI runs in a
subprocess. DIFFPRIOR_PLUGINS restricts loading to the distributions under test.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from diffprior.plugins import registry as plugins
from diffprior.plugins.hooks import hookimpl
from diffprior.testing import PluginSandbox

ROOT = Path(__file__).resolve().parents[1]
GAUSSIAN = ROOT / "examples" / "gaussian.toml"

TERM_MODULE = """
from typing import ClassVar, Literal
from diffprior.config.bases import TermConfig
from diffprior.plugins.hooks import hookimpl

class Config(TermConfig):
    type: Literal["{name}"] = "{name}"
    default_weight: ClassVar = 1.0
    default_clip: ClassVar = "none"

@hookimpl
def register_terms(register):
    register(Config)
"""

BROKEN = {
    "diffprior-import-error": ("import_error_plugin.py", "import no_such_module_for_diffprior_tests\n"),
    "diffprior-wrong-argument": ("wrong_argument_plugin.py", """
        from diffprior.plugins.hooks import hookimpl

        @hookimpl
        def register_terms(register, options):
            pass
    """),
    "diffprior-hook-raises": ("hook_raises_plugin.py", """
        from diffprior.plugins.hooks import hookimpl

        @hookimpl
        def register_terms(register):
            raise RuntimeError("the plugin's own bug")
    """),
    "diffprior-hook-typo": ("hook_typo_plugin.py", """
        from diffprior.plugins.hooks import hookimpl

        @hookimpl
        def register_term(register):
            pass
    """),
    "diffprior-wrong-kind": ("wrong_kind_plugin.py", TERM_MODULE.format(name="wrong-kind").replace(
        "def register_terms", "def register_priors")),
    "diffprior-takes-match": ("takes_match_plugin.py", TERM_MODULE.format(name="match")),
    "diffprior-dup-one": ("dup_one_plugin.py", TERM_MODULE.format(name="shared-name")),
    "diffprior-dup-two": ("dup_two_plugin.py", TERM_MODULE.format(name="shared-name")),
}

# what each scenario's warning must say, besides the distribution's name
SCENARIOS = {
    "diffprior-import-error": (["diffprior-import-error"], "No module named 'no_such_module_for_diffprior_tests'"),
    "diffprior-wrong-argument": (["diffprior-wrong-argument"], "invalid hook implementation"),
    "diffprior-hook-raises": (["diffprior-hook-raises"], "the plugin's own bug"),
    "diffprior-hook-typo": (["diffprior-hook-typo"], "did you mean 'register_terms'?"),
    "diffprior-wrong-kind": (["diffprior-wrong-kind"], "is a term config; register it in register_terms"),
    "diffprior-takes-match": (["diffprior-takes-match"], "'match' is reserved by the core"),
    "duplicate": (["diffprior-dup-one", "diffprior-dup-two"], "'shared-name' is registered by 'diffprior-dup-one', "
                                                              "'diffprior-dup-two', so neither gets that name"),
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> PluginSandbox:
    box = PluginSandbox(tmp_path_factory.mktemp("broken-plugins"))
    for dist, (filename, code) in BROKEN.items():
        box.add_distribution(dist, {filename: code}, {"plugin": filename.removesuffix(".py")})
    return box


def env_for(box: PluginSandbox, dists, **extra):
    return box.env(DIFFPRIOR_PLUGINS=",".join(dists), **extra)


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: plugin")]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_broken_plugin_is_listed_as_failed_and_the_rest_works(sandbox, scenario):
    dists, reason = SCENARIOS[scenario]
    proc = sandbox.cli("plugins", env=env_for(sandbox, dists))
    assert proc.returncode == 0, proc.stderr
    (warning,) = warnings_of(proc.stderr)
    assert reason in warning and all(d in warning for d in dists), warning
    assert "FAILED" in proc.stdout and reason in proc.stdout
    assert "diffprior 0.1.0 (first-party, ok)" in proc.stdout  # the core still lists its own things
    assert "terms      match" in proc.stdout


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_strict_mode_turns_the_problem_into_an_error(sandbox, scenario):
    dists, reason = SCENARIOS[scenario]
    proc = sandbox.cli("--strict-plugins", "plugins", env=env_for(sandbox, dists))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: plugin") and reason in proc.stderr and "Traceback" not in proc.stderr
    assert all(d in proc.stderr for d in dists)


def test_strict_mode_from_the_environment(sandbox):
    proc = sandbox.cli("plugins", env=env_for(sandbox, ["diffprior-import-error"], DIFFPRIOR_STRICT_PLUGINS="1"))
    assert proc.returncode == 2 and "diffprior-import-error" in proc.stderr


def test_run_works_next_to_every_broken_plugin_at_once(sandbox, tmp_path):
    proc = sandbox.cli("run", str(GAUSSIAN), "--set", "optimizer.steps=3", "--out", str(tmp_path), "--quiet",
                       env=env_for(sandbox, BROKEN))
    assert proc.returncode == 0, proc.stderr
    warned = "\n".join(warnings_of(proc.stderr))
    for dists, reason in SCENARIOS.values():
        assert reason in warned and all(d in warned for d in dists)
    assert (tmp_path / "metrics.json").exists()


def test_disabling_the_broken_plugin_silences_it(sandbox):
    every = list(BROKEN)
    by_flag = [arg for d in every for arg in ("--disable-plugin", d)]
    proc = sandbox.cli(*by_flag, "plugins", env=env_for(sandbox, every))
    assert proc.returncode == 0 and not warnings_of(proc.stderr), proc.stderr
    for disable in (",".join(every), "third-party"):
        proc = sandbox.cli("--strict-plugins", "plugins", env=env_for(sandbox, every, DIFFPRIOR_DISABLE_PLUGINS=disable))
        assert proc.returncode == 0, proc.stderr
        # listed as disabled, never as loaded or failed
        listed = [line for line in proc.stdout.splitlines() if any(d in line for d in every)]
        assert all(line.endswith("(disabled: not loaded)") for line in listed), proc.stdout


def test_a_plugin_registered_by_code_goes_through_the_same_checks():
    wrong = types.ModuleType("wrong_argument_by_code")

    @hookimpl
    def register_terms(register, options):  # not an argument of the hook spec
        pass

    wrong.register_terms = register_terms
    plugins.register_plugin(wrong, "by-code-wrong-argument")
    try:
        with pytest.warns(plugins.PluginWarning, match="by-code-wrong-argument.*invalid hook implementation"):
            registry = plugins.load(plugins.PluginSettings(only={"by-code-wrong-argument"}))
        assert registry.plugins["by-code-wrong-argument"].errors
        assert "match" in registry.terms  # the core is untouched
        with pytest.raises(plugins.PluginError, match="by-code-wrong-argument"):
            plugins.load(plugins.PluginSettings(strict=True, only={"by-code-wrong-argument"}))
    finally:
        plugins.unregister_plugin("by-code-wrong-argument")
