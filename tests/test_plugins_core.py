"""Plugins registered through the hooks: a throwaway term used from a config file, isolation
of a broken hook, strict mode, and the CLI's listing."""

import json
import subprocess
import sys
import types
from typing import ClassVar, Literal

import pytest

from diffprior import hookimpl
from diffprior.plugins import registry as plugins
from diffprior.cli.main import main
from diffprior.config.bases import TermConfig


def _offset_plugin():
    """A plugin module built on the fly: an 'offset' term pulling the mean intensity to a level."""

    class OffsetConfig(TermConfig):
        type: Literal["offset"] = "offset"
        default_weight: ClassVar = 0.5
        default_clip: ClassVar = {"max_norm": 10.0}
        level: float = 0.0

        def build(self, ctx):
            from diffprior import Term

            level = self.level

            class Offset(Term):
                def log_c(self, x):
                    return -((x.flatten(1).mean(1) - level) ** 2)

            return Offset(self, ctx)

    module = types.ModuleType("throwaway_offset")
    module.OffsetConfig = OffsetConfig

    @hookimpl
    def register_terms(register):
        register(OffsetConfig)

    module.register_terms = register_terms
    return module


def _broken_plugin():
    module = types.ModuleType("throwaway_broken")

    @hookimpl
    def register_terms(register):
        raise RuntimeError("boom in register_terms")

    module.register_terms = register_terms
    return module


@pytest.fixture
def offset_plugin():
    plugins.register_plugin(_offset_plugin(), "throwaway-offset")
    yield
    plugins.unregister_plugin("throwaway-offset")


@pytest.fixture
def broken_plugin():
    plugins.register_plugin(_broken_plugin(), "throwaway-broken")
    yield
    plugins.unregister_plugin("throwaway-broken")
    plugins.configure(None)


CONFIG = """
[prior]
type = "gaussian"
shape = [1, 4, 4]
mean = 0.0
var = 0.5

[[terms]]
type = "offset"
level = 0.7

[optimizer]
steps = 150
lr = 0.05

[timesteps]
type = "constant"
value = 50
"""


def test_throwaway_term_from_a_config_file(offset_plugin, tmp_path):
    cfg = tmp_path / "offset.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--quiet", "--batch", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # the term did its job: the mean intensity moved from the prior's 0 toward 0.7
    assert metrics["metrics_mean"]["offset.log_c"] > -0.05
    info = plugins.get_registry().plugins["throwaway-offset"]
    assert info.registers == {"term": ["offset"]}
    # the declared default weight and clip policy apply when the config gives none
    from diffprior.config.files import load_config

    term = load_config(cfg).terms[0]
    assert term.resolved_clip().mode == "max_norm" and term.resolved_weight()(0.3) == 0.5


def test_broken_hook_warns_and_the_rest_works(offset_plugin, broken_plugin, tmp_path, capsys):
    cfg = tmp_path / "offset.toml"
    cfg.write_text(CONFIG.replace("steps = 150", "steps = 5"))
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: plugin 'throwaway-broken'" in err and "boom in register_terms" in err
    assert main(["plugins"]) == 0
    listing = capsys.readouterr().out
    assert "throwaway-broken" in listing and "FAILED" in listing and "boom" in listing


def test_strict_mode_fails(broken_plugin, tmp_path, capsys, monkeypatch):
    # load only the core and the broken plugin, whatever else is installed
    monkeypatch.setenv("DIFFPRIOR_PLUGINS", "throwaway-broken")
    assert main(["--strict-plugins", "plugins"]) == 2
    assert "throwaway-broken" in capsys.readouterr().err
    with pytest.raises(plugins.PluginError, match="throwaway-broken"):
        plugins.load(plugins.PluginSettings(strict=True, only={"throwaway-broken"}))


def test_disabled_plugin_is_not_loaded(offset_plugin, monkeypatch):
    monkeypatch.setenv("DIFFPRIOR_DISABLE_PLUGINS", "throwaway-offset")
    registry = plugins.load(plugins.PluginSettings.from_env())
    assert "offset" not in registry.terms and "match" in registry.terms
    assert "throwaway-offset" in registry.disabled
    monkeypatch.setenv("DIFFPRIOR_DISABLE_PLUGINS", "third-party")
    assert "offset" not in plugins.load(plugins.PluginSettings.from_env()).terms


def test_plugins_lists_disabled_distributions(offset_plugin, capsys):
    assert main(["--disable-plugin", "throwaway-offset", "plugins"]) == 0
    assert "throwaway-offset (disabled: not loaded)" in capsys.readouterr().out
    plugins.configure(None)


def test_duplicate_name_names_both_distributions(offset_plugin):
    plugins.register_plugin(_offset_plugin(), "throwaway-offset-copy")
    try:
        with pytest.raises(plugins.PluginError) as info:
            plugins.load(plugins.PluginSettings(strict=True, only={"throwaway-offset", "throwaway-offset-copy"}))
        assert "throwaway-offset" in str(info.value) and "throwaway-offset-copy" in str(info.value)
        with pytest.warns(plugins.PluginWarning, match="neither gets that name"):
            registry = plugins.load(plugins.PluginSettings())
        # neither silently wins: each is reachable only under its qualified name
        assert "offset" not in registry.terms
        assert registry.terms["throwaway-offset:offset"].distribution == "throwaway-offset"
        assert registry.terms["throwaway-offset-copy:offset"].distribution == "throwaway-offset-copy"
        assert "throwaway-offset:offset" in registry.unknown_message("term", "offset")
    finally:
        plugins.unregister_plugin("throwaway-offset-copy")


def test_plugins_json_lists_the_core():
    registry = plugins.load(plugins.PluginSettings())
    core = registry.plugins["diffprior"]
    assert {"gaussian"} <= set(core.registers["prior"]) and "match" in core.registers["term"]
    assert "register_commands" in core.hooks


def test_cli_and_plugin_listing_do_not_import_torch():
    code = (
        "import sys, diffprior.cli.main\n"
        "assert 'torch' not in sys.modules, 'import diffprior.cli.main imported torch'\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    diffprior.cli.main.main(['plugins', '--json'])\n"
        "heavy = [m for m in ('torch', 'timm', 'torchvision') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"`diffprior plugins` imported {out.stdout.strip()}"
