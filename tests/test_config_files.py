"""Reading config files, --set overrides and the build context, each against the value it must give."""

import json
from pathlib import Path

import pytest

from diffprior.config.bases import BuildContext
from diffprior.errors import ConfigError
from diffprior.config.files import _parse_scalar, apply_overrides, load_config, read_config_file

SAME = {"prior": {"type": "gaussian", "shape": [1, 4, 4]}, "optimizer": {"steps": 3, "lr": 0.5}}


@pytest.mark.parametrize("name, text", [
    ("run.toml", '[prior]\ntype = "gaussian"\nshape = [1, 4, 4]\n[optimizer]\nsteps = 3\nlr = 0.5\n'),
    ("run.TOML", '[prior]\ntype = "gaussian"\nshape = [1, 4, 4]\n[optimizer]\nsteps = 3\nlr = 0.5\n'),
    ("run.yaml", "prior: {type: gaussian, shape: [1, 4, 4]}\noptimizer: {steps: 3, lr: 0.5}\n"),
    ("run.yml", "prior: {type: gaussian, shape: [1, 4, 4]}\noptimizer: {steps: 3, lr: 0.5}\n"),
    ("run.json", json.dumps(SAME)),
])
def test_every_format_reads_to_the_same_mapping(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert read_config_file(path) == SAME


@pytest.mark.parametrize("name, text, words", [
    ("missing.toml", None, "config file not found: "),
    ("run.ini", "[prior]\n", "unsupported config format '.ini': use .toml, .yaml, .yml or .json"),
    ("list.yaml", "- 1\n- 2\n", "the top level of a config must be a mapping"),
    ("bad.json", '{"a":\n\n   1,,}', "syntax error: Expecting property name enclosed in double quotes: line 3 column 6 (char 12)"),
])
def test_unreadable_files_say_why(tmp_path, name, text, words):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_config_file(path)
    assert words in str(info.value)
    if text is not None:
        assert str(info.value).startswith(f"{path}: ")  # the file is named
        assert str(info.value).endswith(words)  # and nothing else is said after the reason


def test_an_empty_yaml_file_is_an_empty_config(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    assert read_config_file(tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("0.5", 0.5), ("true", True), ("[1, 2]", [1, 2]), ('"sgd"', "sgd"),
    ("'sgd'", "sgd"),  # a TOML string
    ("{linear = [1, 0]}", {"linear": [1, 0]}),  # a TOML inline table
    ("sgd", "sgd"),  # neither: the text as it is
])
def test_override_values_are_json_then_toml_then_text(text, value):
    assert _parse_scalar(text) == value


def test_overrides_reach_nested_tables_and_list_items():
    data = {"terms": [{"type": "match", "weight": 1.0}], "optimizer": {"steps": 10}}
    apply_overrides(data, ["terms.0.weight=0.5", " optimizer.lr =0.1", "denoise.from_t=20", "device=cuda:1",
                           "note=a=b"])
    assert data == {"terms": [{"type": "match", "weight": 0.5}], "optimizer": {"steps": 10, "lr": 0.1},
                    "denoise": {"from_t": 20}, "device": "cuda:1", "note": "a=b"}
    assert apply_overrides({"a": 1}, None) == {"a": 1}


@pytest.mark.parametrize("override, words", [
    ("optimizer.steps", "override 'optimizer.steps' is not of the form key.path=value"),
    ("terms.1.weight=2", "terms.1.weight: '1' is not an index of a list of 1"),
    ("terms.first.weight=2", "terms.first.weight: 'first' is not an index of a list of 1"),
    ("optimizer.steps.x=1", "optimizer.steps.x: optimizer.steps is not a table"),
])
def test_bad_overrides_say_why(override, words):
    data = {"terms": [{"type": "match"}], "optimizer": {"steps": 10}}
    with pytest.raises(ConfigError, match="^--set: " + words.replace(".", r"\.").replace("(", r"\(")):
        apply_overrides(data, [override])


def test_load_config_applies_overrides_then_typed_updates(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('seed = 1\nbatch = 2\n[prior]\ntype = "gaussian"\nshape = [1, 4, 4]\n')
    config = load_config(path, ["optimizer.steps=7", "seed=4"], updates={"seed": 9, "batch": None})
    assert (config.seed, config.batch, config.optimizer.steps) == (9, 2, 7)  # None leaves a value alone
    assert config.base_dir == tmp_path.resolve()


def test_build_context_seeds_decide_the_batch():
    assert BuildContext(batch=3).seeds == [0, 1, 2] and BuildContext(batch=3).indices == [0, 1, 2]
    ctx = BuildContext(batch=5, seeds=[7.0, 9], indices=[4, 2])
    assert (ctx.batch, ctx.seeds, ctx.indices) == (2, [7, 9], [4, 2])
    with pytest.raises(ValueError, match="BuildContext: 3 indices for a batch of 2"):
        BuildContext(seeds=[1, 2], indices=[0, 1, 2])


def test_build_context_paths_are_relative_to_the_config_folder(tmp_path):
    ctx = BuildContext(base_dir=tmp_path)
    assert ctx.path("data/x.safetensors") == tmp_path / "data" / "x.safetensors"
    assert ctx.path("/abs/y") == Path("/abs/y")
    assert BuildContext().path("rel/z") == Path("rel/z")


def test_config_paths_resolve_against_the_config_folder(tmp_path):
    from safetensors.torch import save_file
    import torch

    (tmp_path / "sub").mkdir()
    save_file({"params": torch.zeros(1, 1, 4, 4)}, str(tmp_path / "sub" / "start.safetensors"))
    path = tmp_path / "run.toml"
    path.write_text('[prior]\ntype = "gaussian"\nshape = [1, 4, 4]\n[init]\ntype = "file"\npath = "sub/start.safetensors"\n')
    assert load_config(path).init.path == tmp_path.resolve() / "sub" / "start.safetensors"
    path.write_text('[prior]\ntype = "gaussian"\nshape = [1, 4, 4]\n[init]\ntype = "file"\npath = "sub/none.safetensors"\n')
    with pytest.raises(ConfigError, match="init.path: file not found: .*sub/none.safetensors"):
        load_config(path)


def test_a_term_without_weight_or_clip_uses_its_own_defaults():
    from diffprior.plugins.builtins import MatchConfig
    from diffprior.method.clipping import ClipPolicy
    from diffprior.method.schedules import Constant

    default = MatchConfig()
    assert default.resolved_weight() == Constant(value=1.0) and default.resolved_clip() == ClipPolicy()
    own = MatchConfig(weight=0.3, clip={"max_norm": 2})
    assert own.resolved_weight() == Constant(value=0.3) and own.resolved_clip().mode == "max_norm"


def test_options_seeds_steps_and_typed_updates(tmp_path):
    from diffprior import Options

    o = Options(seed=10, batch=3, optimizer={"steps": 12}, device=" cuda:1 ")
    assert o.seeds() == [10, 11, 12] and o.steps == 12 and o.device == "cuda:1"
    again = o.updated(seed=2, batch=1)
    assert again.seeds() == [2] and again.steps == 12 and o.seeds() == [10, 11, 12]
    path = tmp_path / "run.toml"
    path.write_text('[prior]\ntype = "gaussian"\nshape = [1, 4, 4]\n')
    assert load_config(path).updated(seed=5).base_dir == tmp_path.resolve()  # the folder is kept


@pytest.mark.parametrize("options, words", [
    ({"optimizer": {"betas": (0.9, 1.0)}}, "betas[1] = 1.0: each beta is a decay rate in [0, 1)"),
    ({"optimizer": {"betas": (-0.1, 0.9)}}, "betas[0] = -0.1"),
    ({"optimizer": {"lr": {"linear": [0.1, 0.0], "jitter": 0.01}}}, "its schedule cannot have jitter"),
    ({"init": {"type": "file"}}, "init type 'file' needs path = 'FILE.safetensors'"),
    ({"device": "gpu"}, "unknown device 'gpu': use cpu, cuda, cuda:N (N = 0, 1, ...), mps or xpu"),
    ({"optimizer": {"steps": True}}, "steps must be a number, not true"),
])
def test_bad_options_say_why(options, words):
    from diffprior import Options

    with pytest.raises(ValueError) as info:
        Options(**options)
    assert words in str(info.value)


def test_betas_at_the_edge_of_the_range_are_accepted():
    from diffprior import Options

    assert Options(optimizer={"betas": (0.0, 0.999)}).optimizer.betas == (0.0, 0.999)


def _invalid(data):
    from diffprior.config.run_config import validate_config

    with pytest.raises(ConfigError) as info:
        validate_config(data, source="run.toml")
    return str(info.value)


PRIOR = {"type": "gaussian", "shape": [1, 4, 4]}


def test_each_kind_of_validation_error_reads_as_a_sentence():
    assert _invalid({}) == "run.toml: prior: required key is missing"
    assert _invalid({"prior": PRIOR, "optimizer": {"steps": "many"}}) == (
        "run.toml: optimizer.steps: Input should be a valid integer, unable to parse string as an integer (got 'many')")
    assert _invalid({"prior": PRIOR, "optimizer": {"lrr": 0.1}}).startswith(
        "run.toml: optimizer.lrr: unknown key 'lrr' (did you mean 'lr'?); allowed keys: betas, lr, momentum, steps")
    assert _invalid({"prior": PRIOR, "seeed": 1}).startswith("run.toml: seeed: unknown key 'seeed' (did you mean 'seed'?)")
    assert _invalid({"prior": PRIOR, "terms": [{"type": "match", "noize": 1}]}).startswith(
        "run.toml: terms.0.noize: unknown key 'noize' (did you mean 'noise'?); allowed keys: clip, mask, name, noise")
    assert _invalid({"prior": PRIOR, "terms": [{"noise": 1}]}).startswith(
        "run.toml: terms.0: missing 'type' key; available term types: ")
    assert _invalid({"prior": {"type": 3}}).startswith("run.toml: prior.type: a type is a name in quotes, got 3; available prior types: ")
    assert _invalid({"prior": PRIOR, "terms": [{"type": "mtach"}]}).startswith(
        "run.toml: terms.0.type: unknown term type 'mtach' (did you mean 'match'?)")


def test_several_errors_are_listed_one_per_line():
    message = _invalid({"prior": PRIOR, "optimizer": {"steps": 0, "lr": -1}, "batch": 0})
    lines = message.split("\n  ")
    assert lines[0] == "run.toml: " and len(lines) == 3
    assert lines[1].startswith("optimizer.steps: ") and lines[2].startswith("batch: ")


def test_no_prior_types_means_a_broken_install():
    from diffprior.plugins.registry import PluginSettings, Registry
    from diffprior.config.run_config import run_config_model

    with pytest.raises(ConfigError, match=r"^no prior types are installed; is the diffprior core installed correctly\?$"):
        run_config_model(Registry(PluginSettings()))


def test_the_json_schema_lists_every_schedule():
    from diffprior.plugins.registry import get_registry
    from diffprior.config.run_config import json_schema

    defs = json_schema()["$defs"]
    assert {f"schedule:{name}" for name in get_registry().schedules} <= set(defs)
    assert defs["schedule:linear"]["properties"]["start"]["type"] == "number"


def test_resolve_path_without_a_config_folder_keeps_the_path_as_given(tmp_path):
    from diffprior.config.bases import resolve_path

    # called from Python (no validation info) or with no base_dir: nothing is prefixed
    assert resolve_path("weights/prior.safetensors", None, must_exist=False) == Path("weights/prior.safetensors")
    (tmp_path / "here.txt").write_text("x")
    assert resolve_path(tmp_path / "here.txt", None) == tmp_path / "here.txt"
    with pytest.raises(ValueError, match="file not found: nowhere.txt"):
        resolve_path("nowhere.txt", None)


def test_a_terms_own_clip_policy_applies_unless_the_config_sets_one():
    from typing import Literal

    from diffprior.config.bases import TermConfig

    class ClippedConfig(TermConfig):
        type: Literal["clipped"] = "clipped"
        default_clip = {"max_norm": 2.5}

    own = ClippedConfig().resolved_clip()
    assert (own.mode, own.value(0.0), own.value(1.0)) == ("max_norm", 2.5, 2.5)
    assert ClippedConfig(clip="none").resolved_clip().mode == "none"
