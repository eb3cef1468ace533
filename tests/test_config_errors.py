"""Every broken config exits with code 2 and one readable message naming the file and key."""

import json
from pathlib import Path

import pytest

from diffprior.cli.main import main

BROKEN = Path(__file__).parent / "configs" / "broken"

# file → (key path that must be named, words that must appear)
CASES = {
    "prior_type_typo.toml": ("prior.type", ["unknown prior type 'gausian'", "did you mean 'gaussian'"]),
    "term_type_typo.toml": ("terms.0.type", ["unknown term type 'mtach'", "did you mean 'match'"]),
    "wrong_value_type.toml": ("optimizer.steps", ["integer", "'many'"]),
    "missing_prior.toml": ("prior", ["required key is missing"]),
    "unknown_key.toml": ("optimizer.lrr", ["unknown key 'lrr'", "did you mean 'lr'"]),
    "unknown_term_key.toml": ("terms.0.noize", ["unknown key 'noize'", "did you mean 'noise'"]),
    "toml_syntax.toml": ("", ["syntax error", "line 1"]),
    "yaml_syntax.yaml": ("", ["syntax error", "line"]),
    "json_syntax.json": ("", ["syntax error", "line 1"]),
    "negative_steps.toml": ("optimizer.steps", ["greater than 0", "-5"]),
    "missing_checkpoint.toml": ("prior.checkpoint", ["file not found", "does-not-exist.safetensors"]),
    "schedule_typo.toml": ("terms.0.weight", ["unknown schedule type 'lineer'", "did you mean 'linear'"]),
    "negative_noise.yaml": ("terms.0.noise", ["greater than 0"]),
    "term_without_type.toml": ("terms.0", ["missing 'type' key", "match"]),
    "lr_jitter.toml": ("optimizer.lr", ["cannot have jitter"]),
    # values that used to be accepted silently or to end in a traceback (issue 10)
    "negative_lr.toml": ("optimizer.lr", ["the learning rate cannot be negative", "-0.01"]),
    "lr_schedule_negative.toml": ("optimizer.lr", ["cannot be negative", "at step 99 of 100"]),
    "weight_schedule_negative.toml": ("terms.0.weight", ["weight of term 'match' cannot be negative"]),
    "betas_out_of_range.toml": ("optimizer.betas", ["betas[0] = 1.5", "[0, 1)"]),
    "seed_too_large.json": ("seed", ["less than or equal to 9223372036854775807"]),
    "unknown_device.toml": ("device", ["unknown device 'tpu'", "cuda:N"]),
    "infinite_noise.toml": ("terms.0.noise", ["finite number", "inf"]),
    "infinite_jitter.toml": ("timesteps.jitter", ["finite number", "inf"]),
    "negative_max_norm.toml": ("terms.0.clip", ["clip bound (max_norm) must be positive", "-1"]),
    "denoise_beyond_T.toml": ("denoise.from_t", ["5000 is beyond the prior's last timestep 999"]),
    "steps_boolean.toml": ("optimizer", ["steps must be a number, not true"]),
    "batch_too_large.toml": ("batch", ["100000000 samples of shape (1, 8, 8) need at least", "GB", "available"]),
    "target_shape_mismatch.toml": ("terms.0", ["has shape (3, 32, 32)", "samples have shape (1, 32, 32)"]),
    # found by tests/test_config_properties.py (hypothesis)
    "zero_variance.json": ("prior.var", ["variance must be positive", "0"]),
    "boolean_variance.json": ("prior", ["var must be a number, not false"]),
    "type_not_a_string.json": ("prior.type", ["a type is a name in quotes", "{'max_norm': 0}"]),
    "control_char_name.json": ("terms.0.name", ["control characters", "'\\x07'"]),
}


def test_corpus_is_covered():
    assert sorted(p.name for p in BROKEN.iterdir()) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_broken_config_exits_2_with_readable_message(name, command, capsys, tmp_path):
    key, words = CASES[name]
    args = [command, str(BROKEN / name)] + (["--out", str(tmp_path), "--quiet"] if command == "run" else [])
    assert main(args) == 2
    output = capsys.readouterr().err
    assert "Traceback" not in output
    # plugin warnings may precede it; the error itself is one line
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    err = errors[0]
    assert name in err
    assert key in err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert not list(tmp_path.iterdir()), "a bad config must not start a run"


def test_bad_override_is_reported(capsys):
    assert main(["validate", str(BROKEN.parent / "ok.toml"), "--set", "optimizer.stepz=3"]) == 2
    err = capsys.readouterr().err
    assert "optimizer.stepz" in err and "did you mean 'steps'" in err


def test_missing_config_file(capsys, tmp_path):
    assert main(["validate", str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_override_changes_value(tmp_path):
    from diffprior.config.files import load_config

    cfg = load_config(BROKEN.parent / "ok.toml", ["optimizer.steps=7", "terms.0.weight={linear=[1, 0]}", "seed=3"])
    assert cfg.optimizer.steps == 7 and cfg.seed == 3
    assert cfg.terms[0].weight.type == "linear" and cfg.terms[0].weight(0.5) == 0.5


def test_format_validation_error_names_unknown_and_missing_types_itself():
    # validate_config reports unknown and missing types before pydantic does; a caller of the
    # exported format_validation_error gets the same sentences from pydantic's union errors
    from pydantic import ValidationError

    from diffprior.config.run_config import format_validation_error
    from diffprior.plugins.registry import get_registry
    from diffprior.config.run_config import run_config_model

    registry = get_registry()
    data = {"prior": {"type": "nope"}, "variable": {"type": "pixle"}, "terms": [{"weight": 1.0}]}
    with pytest.raises(ValidationError) as caught:
        run_config_model(registry).model_validate(data, context={"registry": registry})
    lines = format_validation_error(caught.value, data, registry)
    assert lines == [f"prior.type: {registry.unknown_message('prior', 'nope')}",
                     f"variable.type: {registry.unknown_message('variable', 'pixle')}",
                     "terms.0: missing 'type' key; available term types: " + ", ".join(registry.names("term"))]


# ---------------------------------------------------------------- whole messages, key by key
GAUSSIAN = {"type": "gaussian", "shape": [1, 4, 4], "mean": 0.5, "var": 0.1}
MATCH = {"type": "match", "target": -0.5, "weight": 0.01}


def _message(data, registry=None) -> str:
    from diffprior.config.run_config import validate_config
    from diffprior.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        validate_config(data, registry=registry)
    return str(caught.value)


def _names(kind):
    from diffprior.plugins.registry import get_registry

    return get_registry().names(kind)


def test_every_unknown_or_missing_type_is_named_with_its_place():
    from diffprior.plugins.registry import get_registry

    registry = get_registry()
    data = {"prior": {"type": "gausian"}, "variable": {"type": "pixel"},
            "terms": [MATCH, {"type": "mtach"}, {"weight": 1.0}, {"type": 3}]}
    assert _message(data).split("\n  ")[1:] == [
        f"prior.type: {registry.unknown_message('prior', 'gausian')}",
        f"variable.type: {registry.unknown_message('variable', 'pixel')}",
        f"terms.1.type: {registry.unknown_message('term', 'mtach')}",
        "terms.2: missing 'type' key; available term types: " + ", ".join(_names("term")),
        "terms.3.type: a type is a name in quotes, got 3; available term types: " + ", ".join(_names("term")),
    ]
    assert _message({"prior": GAUSSIAN, "variable": {"scale": 1}}) == (
        "variable: missing 'type' key; available variable types: " + ", ".join(_names("variable")))
    assert _message({"prior": GAUSSIAN, "variable": {"type": [1]}}) == (
        "variable.type: a type is a name in quotes, got [1]; available variable types: " + ", ".join(_names("variable")))


def test_unknown_keys_name_the_allowed_ones_of_their_own_table():
    from diffprior.config.options import InitConfig

    init_keys = ", ".join(sorted(InitConfig.model_fields))
    # a close name is suggested, a far one is not (and nothing else is appended)
    assert _message({"prior": GAUSSIAN, "init": {"type": "noise", "scael": 2}}) == (
        f"init.scael: unknown key 'scael' (did you mean 'scale'?); allowed keys: {init_keys}")
    assert _message({"prior": GAUSSIAN, "init": {"type": "noise", "zzzz": 2}}) == (
        f"init.zzzz: unknown key 'zzzz'; allowed keys: {init_keys}")
    # a schedule's table has no fixed key list here: the key is named, nothing is guessed
    assert _message({"prior": GAUSSIAN, "timesteps": {"type": "cosine-linear", "zzzz": 1}}) == (
        "timesteps.zzzz: unknown key 'zzzz'")
    from diffprior.plugins.registry import get_registry

    match_keys = ", ".join(sorted(get_registry().get("term", "match").model_fields))
    assert _message({"prior": GAUSSIAN, "terms": [MATCH, dict(MATCH, zzzz=1)]}) == (
        f"terms.1.zzzz: unknown key 'zzzz'; allowed keys: {match_keys}")


def test_value_messages_show_the_value_only_where_it_helps():
    # a wrong scalar is shown; a validator's own sentence is not followed by "(got ...)"
    assert _message({"prior": GAUSSIAN, "batch": "abc"}) == (
        "batch: Input should be a valid integer, unable to parse string as an integer (got 'abc')")
    assert _message({"prior": GAUSSIAN, "terms": [dict(MATCH, weight="abc")]}) == (
        "terms.0.weight: a schedule is a number, a table with a 'type' key, or a short table like "
        "{linear = [0.01, 0.0]}")
    assert _message({"prior": GAUSSIAN, "optimizer": {"lr": {"exponential": [1, "a"]}}}) == (
        "optimizer.lr.end: Input should be a valid number, unable to parse string as a number (got 'a')")


def test_a_config_that_is_not_a_table_is_reported_at_the_top_level():
    assert _message([GAUSSIAN]).startswith("(top level): Input should be a valid dictionary")


def _registry_with_extra_term(name):
    """A registry that is not the installed one: the installed plugins plus one more term."""
    from typing import Literal

    from diffprior.config.bases import TermConfig
    from diffprior.plugins.registry import PluginSettings, Registration, load

    class ExtraConfig(TermConfig):
        type: Literal[name] = name  # type: ignore[valid-type]

    registry = load(PluginSettings())
    registry.entries["term"][name] = Registration("term", name, ExtraConfig, "test-only")
    return registry


def test_validation_and_schema_use_the_registry_they_are_given():
    from diffprior.config.run_config import json_schema, validate_config
    from diffprior.plugins.registry import get_registry

    registry = _registry_with_extra_term("only-in-this-registry")
    assert "only-in-this-registry" not in get_registry().names("term")
    config = validate_config({"prior": GAUSSIAN, "terms": [{"type": "only-in-this-registry"}]}, registry=registry)
    assert config.terms[0].type == "only-in-this-registry"
    assert "only-in-this-registry" in json.dumps(json_schema(registry))
    assert "only-in-this-registry" not in json.dumps(json_schema())
    # ... and the unknown-key hint lists that registry's term keys
    assert _message({"prior": GAUSSIAN, "terms": [{"type": "only-in-this-registry", "zzzz": 1}]}, registry) == (
        "terms.0.zzzz: unknown key 'zzzz'; allowed keys: " + ", ".join(sorted(registry.get("term", "only-in-this-registry").model_fields)))


def test_format_validation_error_on_another_models_unions():
    # a plugin's own unions (not prior/variable/terms) keep pydantic's sentence, at the right
    # place; union-member labels ('list[int]', 'function-after[...]', 'constrained-str') are
    # dropped from the place
    from typing import Annotated, Literal, Union

    from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, constr

    from diffprior.config.run_config import format_validation_error
    from diffprior.plugins.registry import get_registry

    def non_negative(v):
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    class Disc(BaseModel):
        model_config = ConfigDict(extra="forbid")
        type: Literal["disc"] = "disc"
        size: int = 1

    class Ring(BaseModel):
        type: Literal["ring"] = "ring"

    class Shape(BaseModel):
        shape: Annotated[Union[Disc, Ring], Field(discriminator="type")] = Disc()
        sizes: Union[Annotated[int, AfterValidator(non_negative)], list[int]] = 1
        label: Union[constr(min_length=3), list[str]] = "abc"

    def lines(data):
        with pytest.raises(ValidationError) as caught:
            Shape.model_validate(data)
        return format_validation_error(caught.value, data, get_registry())

    assert lines({"shape": {"type": "star"}}) == [
        "shape: Input tag 'star' found using 'type' does not match any of the expected tags: 'disc', 'ring'"]
    assert lines({"shape": {"size": 2}}) == ["shape: Unable to extract tag using discriminator 'type'"]
    assert lines({"shape": {"type": "disc", "size": "x"}}) == [
        "shape.size: Input should be a valid integer, unable to parse string as an integer (got 'x')"]
    assert lines({"sizes": -1}) == ["sizes: must be >= 0", "sizes: Input should be a valid list (got -1)"]
    assert lines({"sizes": [1, "x"]}) == [
        "sizes: Input should be a valid integer",
        "sizes.1: Input should be a valid integer, unable to parse string as an integer (got 'x')"]
    assert lines({"label": "x"}) == ["label: String should have at least 3 characters (got 'x')",
                                     "label: Input should be a valid list (got 'x')"]


def test_a_registry_with_one_class_of_a_kind_and_no_default_variable():
    # one term class is no union (pydantic needs two); without a 'pixels' variable the
    # variable table is required rather than filled in
    from diffprior.config.run_config import validate_config
    from diffprior.plugins.registry import PluginSettings, load

    registry = load(PluginSettings())
    registry.entries["term"] = {"match": registry.entries["term"]["match"]}
    registry.entries["variable"] = {"bounded-pixels": registry.entries["variable"]["bounded-pixels"]}
    config = validate_config({"prior": GAUSSIAN, "variable": {"type": "bounded-pixels"}, "terms": [MATCH]},
                             registry=registry)
    assert (config.terms[0].type, config.variable.type) == ("match", "bounded-pixels")
    assert _message({"prior": GAUSSIAN, "terms": [MATCH]}, registry) == "variable: required key is missing"


def test_load_config_and_the_schema_name_things_as_the_docs_do(tmp_path):
    from diffprior.config.run_config import json_schema
    from diffprior.config.files import load_config

    registry = _registry_with_extra_term("only-in-this-registry")
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"prior": GAUSSIAN, "terms": [{"type": "only-in-this-registry"}]}))
    assert load_config(path, registry=registry).terms[0].type == "only-in-this-registry"
    schema = json_schema(registry)
    assert schema["title"] == "RunConfig" and schema["required"] == ["prior"]
    assert schema["properties"]["prior"]["description"] == "the diffusion prior"
    assert schema["properties"]["terms"]["description"] == "the constraints"


def test_an_unknown_key_of_the_prior_or_variable_lists_that_types_keys():
    from diffprior.plugins.registry import get_registry

    registry = get_registry()
    for key, entry in (("prior", dict(GAUSSIAN, meen=0.5)), ("variable", {"type": "pixels", "zzzz": 1})):
        keys = ", ".join(sorted(registry.get(key, entry["type"]).model_fields))
        close = " (did you mean 'mean'?)" if key == "prior" else ""
        bad = "meen" if key == "prior" else "zzzz"
        data = {"prior": GAUSSIAN, key: entry}
        assert _message(data) == f"{key}.{bad}: unknown key '{bad}'{close}; allowed keys: {keys}"


def test_every_problem_of_a_valid_looking_config_is_listed_one_per_line():
    data = {"prior": GAUSSIAN, "denoise": {"from_t": 5000}, "terms": [dict(MATCH, weight={"linear": [1.0, -1.0]})]}
    assert _message(data) == (
        "\n  terms.0.weight: the weight of term 'match' cannot be negative; the linear schedule "
        "{'start': 1.0, 'end': -1.0} is -0.998 at step 999 of 1000 (s = 0.999)"
        "\n  denoise.from_t: 5000 is beyond the prior's last timestep 999 (T = 1000)")


def test_an_unknown_denoise_key_lists_the_denoise_keys():
    from diffprior.config.options import DenoiseConfig

    assert _message({"prior": GAUSSIAN, "denoise": {"from_t": 100, "stpes": 5}}) == (
        "denoise.stpes: unknown key 'stpes' (did you mean 'steps'?); allowed keys: "
        + ", ".join(sorted(DenoiseConfig.model_fields)))
