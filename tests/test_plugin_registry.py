"""The plugin registry's rules, one at a time, on plugins registered by code (no subprocess):
which distributions load, who owns a name, and what each problem says."""

import types
import warnings
from typing import Literal

import pytest

from diffprior import hookimpl
from diffprior.plugins import registry as plugins
from diffprior.config.bases import TermConfig
from diffprior.errors import PluginError, PluginWarning
from diffprior.plugins.registry import PluginInfo, PluginSettings, Registration, Registry, load, registered_name


def _term(name):
    class Config(TermConfig):
        type: Literal[name] = name  # type: ignore[valid-type]

    Config.__name__ = f"{name.title()}Config"
    return Config


def _plugin(*configs, module_name="throwaway"):
    module = types.ModuleType(module_name)

    @hookimpl
    def register_terms(register):
        for config in configs:
            register(config)

    module.register_terms = register_terms
    return module


@pytest.fixture
def registered():
    """register_plugin(module, distribution) for the test; all unregistered afterwards."""
    names = []

    def add(module, distribution):
        names.append(distribution)
        plugins.register_plugin(module, distribution)

    yield add
    for name in names:
        plugins.unregister_plugin(name)


def _load(**settings):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = load(PluginSettings(**settings))
    return registry, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("DIFFPRIOR_STRICT_PLUGINS", " Yes ")
    monkeypatch.setenv("DIFFPRIOR_PLUGINS", "Diffprior_TSP, ,diffprior-unet")
    monkeypatch.setenv("DIFFPRIOR_DISABLE_PLUGINS", "third-party")
    settings = PluginSettings.from_env()
    assert settings.strict and settings.only == {"diffprior-tsp", "diffprior-unet"} and settings.disable == {"third-party"}
    for value, strict in (("1", True), ("true", True), ("0", False), ("", False)):
        monkeypatch.setenv("DIFFPRIOR_STRICT_PLUGINS", value)
        assert PluginSettings.from_env().strict is strict
    monkeypatch.setenv("DIFFPRIOR_PLUGINS", "  ")
    monkeypatch.delenv("DIFFPRIOR_DISABLE_PLUGINS")
    assert PluginSettings.from_env().only is None and PluginSettings.from_env().disable == set()


def test_which_distributions_a_setting_allows():
    only = PluginSettings(only={"diffprior-tsp"})
    assert only.allows("diffprior") and only.allows("Diffprior_TSP") and not only.allows("diffprior-unet")
    third = PluginSettings(disable={"third-party"})
    assert third.allows("diffprior-unet", first_party=True) and not third.allows("someones-plugin")
    named = PluginSettings(disable={"diffprior-unet"})
    assert not named.allows("diffprior-unet", first_party=True) and named.allows("diffprior-tsp")
    assert PluginSettings(disable={"diffprior"}).allows("diffprior")  # the core always loads


def test_plugin_info_as_a_dict():
    info = PluginInfo("dist", "1.0", modules=["m"], hooks={"register_terms", "register_priors"},
                      registers={"term": ["a"]}, errors=[], import_seconds=0.12345, first_party=True)
    assert info.as_dict() == {"distribution": "dist", "version": "1.0", "first_party": True, "modules": ["m"],
                              "hooks": ["register_priors", "register_terms"], "registers": {"term": ["a"]},
                              "errors": [], "loaded": True, "import_seconds": 0.123}
    info.errors.append("boom")
    assert info.as_dict()["loaded"] is False


def test_unknown_names_say_why():
    registry = Registry(PluginSettings())
    registry.entries["term"]["match"] = Registration("term", "match", object, "diffprior")
    assert registry.unknown_message("term", "mtach") == "unknown term type 'mtach' (did you mean 'match'?); available: 'match'"
    with pytest.raises(KeyError, match="unknown term type 'edges'"):
        registry.get("term", "edges")
    registry.disabled = {"zeta", "alpha"}
    assert registry.unknown_message("term", "edges").endswith("; disabled plugins (they may provide it): alpha, zeta")
    registry.disabled_names[("term", "edges")] = ["alpha"]
    assert registry.unknown_message("term", "edges").endswith("; 'edges' comes from the plugin 'alpha', which is disabled")
    registry.disabled_names[("term", "edges")] = ["alpha", "zeta"]
    assert registry.unknown_message("term", "edges").endswith("; 'edges' comes from disabled plugins: 'alpha', 'zeta'")
    registry.ambiguous["term"]["blur"] = ["a", "b"]
    assert registry.unknown_message("term", "blur") == (
        "term type 'blur' is registered by 2 distributions ('a', 'b'); pick one: type = 'a:blur' or type = 'b:blur'")


def test_a_problem_names_the_plugins_and_strict_mode_raises():
    registry = Registry(PluginSettings())
    registry.plugins["a"] = PluginInfo("a", None)
    with pytest.warns(PluginWarning, match=r"^plugin 'a': broke$"):
        registry.problem("a", "broke")
    with pytest.warns(PluginWarning, match=r"^plugins 'a', 'b': clash$"):
        registry.problem("a", "clash", also=["b"])
    assert registry.plugins["a"].errors == ["broke", "clash"]
    assert registry.problems == ["plugin 'a': broke", "plugins 'a', 'b': clash"]
    strict = Registry(PluginSettings(strict=True))
    with pytest.raises(PluginError, match=r"^plugin 'a': broke\n\(strict plugin mode is on: DIFFPRIOR_STRICT_PLUGINS or --strict-plugins\)$"):
        strict.problem("a", "broke")


def test_registered_names_and_wrong_hooks():
    from diffprior.plugins.builtins import GaussianPriorConfig, MatchConfig

    assert registered_name("term", MatchConfig) == "match"
    assert registered_name("command", types.SimpleNamespace(name="tsp")) == "tsp"
    with pytest.raises(TypeError, match=r"is not a diffprior config class \(it has no literal 'type' field\)$"):
        registered_name("term", object)
    with pytest.raises(TypeError, match=r"^MatchConfig is a term config; register it in register_terms, not register_priors$"):
        registered_name("prior", MatchConfig)
    assert registered_name("prior", GaussianPriorConfig) == "gaussian"


def test_a_plugin_term_is_registered_under_its_name(registered):
    config = _term("sharpen")
    registered(_plugin(config), "throwaway-a")
    registry, problems = _load()
    assert registry.get("term", "sharpen") is config and problems == []
    info = registry.plugins["throwaway-a"]
    assert info.registers == {"term": ["sharpen"]} and info.hooks == {"register_terms"} and not info.first_party
    assert registry.names("term") == sorted(registry.names("term")) and "sharpen" in registry.names("term")
    assert config in registry.classes("term")


def test_a_core_name_stays_the_cores(registered):
    registered(_plugin(_term("match")), "throwaway-a")
    registry, problems = _load()
    assert registry.plugins["diffprior"].registers["term"].count("match") == 1
    assert registry.entries["term"]["match"].distribution == "diffprior"
    assert problems == ["plugin 'throwaway-a': term 'match' is reserved by the core (diffprior); not registered. "
                        "Rename it in throwaway-a"]


def test_a_name_registered_twice_by_one_plugin_keeps_the_first(registered):
    first, second = _term("blur"), _term("blur")
    registered(_plugin(first, second), "throwaway-a")
    registry, problems = _load()
    assert registry.get("term", "blur") is first
    assert problems == ["plugin 'throwaway-a': registers term 'blur' 2 times; keeping the first"]


def test_a_name_two_plugins_register_goes_to_neither(registered):
    registered(_plugin(_term("blur"), module_name="one"), "throwaway-a")
    registered(_plugin(_term("blur"), module_name="two"), "throwaway-b")
    registry, problems = _load()
    assert "blur" not in registry.entries["term"] and registry.ambiguous["term"]["blur"] == ["throwaway-a", "throwaway-b"]
    for dist in ("throwaway-a", "throwaway-b"):
        qualified = registry.get("term", f"{dist}:blur")
        assert qualified.model_validate({"type": f"{dist}:blur"}).type == f"{dist}:blur"
        assert registry.plugins[dist].registers == {"term": [f"{dist}:blur"]}
    assert problems == ["plugins 'throwaway-a', 'throwaway-b': term 'blur' is registered by 'throwaway-a', "
                        "'throwaway-b', so neither gets that name; a config picks one with type = 'throwaway-a:blur' "
                        "or type = 'throwaway-b:blur', or disable one (--disable-plugin throwaway-b)"]


def test_a_name_with_a_colon_is_refused(registered):
    registered(_plugin(_term("a:b")), "throwaway-a")
    registry, problems = _load()
    assert "a:b" not in registry.entries["term"]
    assert problems == ["plugin 'throwaway-a': hook register_terms raised ValueError: term name 'a:b' contains ':', "
                        "which is kept for 'distribution:name'"]


def test_a_disabled_plugin_registered_by_code_is_listed_as_disabled(registered):
    registered(_plugin(_term("sharpen")), "throwaway-a")
    registry, _ = _load(disable={"throwaway-a"})
    assert "throwaway-a" in registry.disabled and "sharpen" not in registry.entries["term"]
    registry, _ = _load(only={"diffprior-unet"})
    assert "throwaway-a" in registry.disabled


def test_a_hook_that_exits_or_interrupts_is_that_plugins_failure(registered):
    module = types.ModuleType("quitter")

    @hookimpl
    def register_terms(register):
        raise SystemExit(3)

    module.register_terms = register_terms
    registered(module, "throwaway-exit")
    interrupter = types.ModuleType("interrupter")

    @hookimpl
    def register_priors(register):
        raise KeyboardInterrupt

    interrupter.register_priors = register_priors
    registered(interrupter, "throwaway-int")
    registry, problems = _load()
    assert "plugin 'throwaway-exit': hook register_terms raised called sys.exit(3)" in problems
    assert "plugin 'throwaway-int': hook register_priors raised KeyboardInterrupt" in problems
    assert registry.get("term", "match") is not None  # the rest works


def test_a_hook_that_raises_is_described_by_its_exception(registered):
    module = types.ModuleType("raiser")

    @hookimpl
    def register_terms(register):
        raise ValueError("no weights here")

    module.register_terms = register_terms
    registered(module, "throwaway-raise")
    _, problems = _load()
    assert "plugin 'throwaway-raise': hook register_terms raised ValueError: no weights here" in problems


def _distribution(tmp_path, name, entry_points=""):
    """A real importlib.metadata distribution read from a .dist-info folder."""
    from importlib import metadata

    info = tmp_path / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    return metadata.PathDistribution(info)


@pytest.mark.parametrize("name, entry_points, first_party", [
    ("diffprior-extra", "[diffprior.distribution]\nfirst-party = diffprior\n", True),
    ("Diffprior", "", True),  # the core itself, whatever the spelling of its name
    ("diffprior-extra", "", False),
    ("diffprior-extra", "[diffprior.distribution]\nfirst-party = someone-else\n", False),
    ("diffprior-extra", "[diffprior.distribution]\nsecond-party = diffprior\n", False),
    ("diffprior-extra", "[another.group]\nfirst-party = diffprior\n", False),
])
def test_first_party_is_what_a_distributions_own_metadata_declares(tmp_path, name, entry_points, first_party):
    assert plugins.declares_first_party(_distribution(tmp_path, name, entry_points)) is first_party


def test_first_party_among_the_installed_distributions():
    from importlib import metadata

    assert plugins.declares_first_party(metadata.distribution("diffprior")) is True
    assert plugins.declares_first_party(metadata.distribution("pluggy")) is False
    assert plugins.declares_first_party(None) is False
    assert plugins._installed_first_party("diffprior-tsp") is True
    assert plugins._installed_first_party("pluggy") is False
    assert plugins._installed_first_party("no-such-distribution") is False


def test_an_entry_point_without_a_distribution_is_named_by_its_top_module():
    from importlib import metadata

    loose = metadata.EntryPoint(name="x", value="my_terms.sub:register", group="diffprior")
    assert plugins._distribution_of(loose) == "my_terms"
    installed = next(ep for ep in metadata.distribution("diffprior-tsp").entry_points if ep.group == "diffprior")
    assert plugins._distribution_of(installed) == "diffprior-tsp"


def test_a_ctrl_c_while_plugins_load_is_the_users_and_the_handler_is_restored():
    import os
    import signal
    import threading

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with plugins._UserInterrupts() as interrupts:
            assert interrupts.pressed is False
            os.kill(os.getpid(), signal.SIGINT)
    assert interrupts.pressed is True
    assert signal.getsignal(signal.SIGINT) is before
    # outside the main thread no handler can be installed: entering and leaving still work
    failures = []

    def in_a_thread():
        try:
            with plugins._UserInterrupts() as inner:
                assert inner.pressed is False
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert failures == [] and signal.getsignal(signal.SIGINT) is before


def test_entry_points_by_distribution_core_first_each_once(monkeypatch):
    from importlib import metadata

    def ep(name, value):
        return metadata.EntryPoint(name=name, value=value, group="diffprior")

    listed = [ep("z", "zeta_terms.mod"), ep("a", "alpha_terms.mod"), ep("a", "alpha_terms.mod"),  # listed twice
              ep("core", "diffprior.plugins.builtins"), ep("b", "alpha_terms.other")]
    monkeypatch.setattr(plugins, "_entry_points", lambda: listed)
    by_dist = plugins.installed_entry_points()
    assert list(by_dist) == ["diffprior", "alpha_terms", "zeta_terms"]
    assert [e.name for e in by_dist["alpha_terms"]] == ["a", "b"]
    monkeypatch.undo()
    assert next(iter(plugins.installed_entry_points())) == "diffprior"  # the installed ones too


def test_loading_goes_on_past_a_broken_disabled_or_skipped_distribution(monkeypatch, tmp_path):
    """Loose entry points (no installed distribution: named by their top module) for modules
    written here: each distribution's problem is its own and the next one still loads."""
    from importlib import metadata

    package = tmp_path / "good_terms"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(
        "from typing import Literal\nfrom diffprior import hookimpl\nfrom diffprior import TermConfig\n\n"
        "class GoodConfig(TermConfig):\n    type: Literal['good-term'] = 'good-term'\n\n"
        "@hookimpl\ndef register_terms(register):\n    register(GoodConfig)\n")
    (tmp_path / "typo_terms.py").write_text("from diffprior import hookimpl\n\n@hookimpl\ndef register_term(register):\n    pass\n")
    for name in ("aaa_disabled", "aab_skipped"):
        (tmp_path / f"{name}.py").write_text("raise RuntimeError('must not be imported')\n")
    (tmp_path / "aac_interrupts.py").write_text("raise KeyboardInterrupt\n")  # the plugin's, not the user's
    monkeypatch.syspath_prepend(str(tmp_path))

    def ep(name, value):
        return metadata.EntryPoint(name=name, value=value, group="diffprior")

    listed = [ep("a", "aaa_disabled"), ep("b", "aab_skipped"), ep("c", "aac_interrupts"), ep("missing", "good_terms.missing"),
              ep("plugin", "good_terms.plugin"), ep("typo", "typo_terms")]
    monkeypatch.setattr(plugins, "_entry_points", lambda: listed)
    registry, problems = _load(disable={"aaa-disabled"}, skip={"aab_skipped": "indexing it hung"})
    assert registry.disabled == {"aaa_disabled"}
    assert problems == [
        "plugin 'aab_skipped': not imported: indexing it hung",
        "plugin 'aac_interrupts': failed to import entry point c = aac_interrupts: KeyboardInterrupt",
        "plugin 'good_terms': failed to import entry point missing = good_terms.missing: "
        "ModuleNotFoundError: No module named 'good_terms.missing'",
        "plugin 'typo_terms': typo_terms:typo implements 'register_term', which is not a diffprior hook "
        "(did you mean 'register_terms'?); hooks: " + ", ".join(plugins.HOOK_OF_KIND.values()),
    ]
    assert registry.get("term", "good-term").__name__ == "GoodConfig"
    info = registry.plugins["good_terms"]
    assert (info.modules, info.version, info.first_party) == (["good_terms.plugin"], None, False)
    assert 0 < info.import_seconds < 60
    skipped = registry.plugins["aab_skipped"]
    assert (skipped.errors, skipped.first_party) == (["not imported: indexing it hung"], False)
    assert "aaa_disabled" not in registry.plugins


def test_three_plugins_with_one_name_each_get_a_qualified_subclass(registered):
    originals = {}
    for dist, module_name in (("throwaway-a", "one"), ("throwaway-b", "two"), ("throwaway-c", "three")):
        originals[dist] = _term("haze")
        registered(_plugin(originals[dist], module_name=module_name), dist)
    registry, problems = _load()
    for dist, original in originals.items():
        entry = registry.entries["term"][f"{dist}:haze"]
        assert (entry.kind, entry.name, entry.distribution) == ("term", f"{dist}:haze", dist)
        assert issubclass(entry.obj, original) and entry.obj.__module__ == original.__module__
        assert entry.obj().type == f"{dist}:haze"
    assert problems[-1].endswith("or disable one (--disable-plugin throwaway-c)")


def test_a_command_name_two_plugins_register_is_qualified_too(registered):
    from diffprior.cli.command import Command

    for dist, module_name in (("throwaway-a", "one"), ("throwaway-b", "two")):
        module = types.ModuleType(module_name)

        @hookimpl
        def register_commands(register):
            register(Command("greet", "say hello", lambda parser: None, lambda args: 0))

        module.register_commands = register_commands
        registered(module, dist)
    registry, _ = _load()
    for dist in ("throwaway-a", "throwaway-b"):
        command = registry.get("command", f"{dist}:greet")
        assert isinstance(command, Command) and (command.name, command.help) == (f"{dist}:greet", "say hello")


def test_a_first_party_distribution_keeps_its_name_against_a_third_party(registered):
    registered(_plugin(_term("mist"), module_name="first"), "diffprior-images")  # installed, first-party
    registered(_plugin(_term("mist"), module_name="third"), "throwaway-third")
    registry, problems = _load()
    assert registry.entries["term"]["mist"].distribution == "diffprior-images"
    assert "plugin 'throwaway-third': term 'mist' is reserved by the first-party distribution 'diffprior-images'; " \
           "not registered. Rename it in throwaway-third" in problems


def test_plugins_registered_by_code_are_named_and_described_like_installed_ones(registered):
    from importlib import metadata

    typo = types.ModuleType("typo_mod")

    @hookimpl
    def hello(register):  # close to no hook name: no guess is offered
        pass

    typo.hello = hello
    registered(typo, "throwaway-typo")
    bad = types.ModuleType("bad_mod")

    @hookimpl
    def register_terms(wrong_argument):  # pluggy refuses an argument the hook does not have
        pass

    bad.register_terms = register_terms
    registered(bad, "throwaway-bad")
    registry, problems = _load()
    assert ("plugin 'throwaway-typo': throwaway-typo:typo_mod implements 'hello', which is not a diffprior hook; "
            "hooks: " + ", ".join(plugins.HOOK_OF_KIND.values())) in problems
    invalid = [p for p in problems if p.startswith("plugin 'throwaway-bad': invalid hook implementation in "
                                                   "throwaway-bad:bad_mod: ")]
    assert len(invalid) == 1 and "wrong_argument" in invalid[0]
    assert registry.plugins["throwaway-typo"].first_party is False
    assert registry.plugins["throwaway-typo"].modules == ["typo_mod"]
    tsp = registry.plugins["diffprior-tsp"]
    assert tsp.first_party is True and tsp.version == metadata.version("diffprior-tsp")


def test_disabling_third_party_keeps_the_first_party_distributions(registered):
    registered(_plugin(_term("fog"), module_name="third_mod"), "throwaway-third")
    registry, _ = _load(disable={"third-party"})
    assert "throwaway-third" in registry.disabled and "fog" not in registry.entries["term"]
    assert "diffprior-tsp" in registry.plugins and "diffprior-tsp" not in registry.disabled
