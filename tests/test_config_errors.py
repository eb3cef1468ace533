"""Every broken config exits with code 2 and one readable message naming the file and key."""

from pathlib import Path

import pytest

from diffprior.cli import main

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
    from diffprior.config import load_config

    cfg = load_config(BROKEN.parent / "ok.toml", ["optimizer.steps=7", "terms.0.weight={linear=[1, 0]}", "seed=3"])
    assert cfg.optimizer.steps == 7 and cfg.seed == 3
    assert cfg.terms[0].weight.type == "linear" and cfg.terms[0].weight(0.5) == 0.5


def test_format_validation_error_names_unknown_and_missing_types_itself():
    # validate_config reports unknown and missing types before pydantic does; a caller of the
    # exported format_validation_error gets the same sentences from pydantic's union errors
    from pydantic import ValidationError

    from diffprior.config import format_validation_error
    from diffprior.plugins import get_registry
    from diffprior.run_config import run_config_model

    registry = get_registry()
    data = {"prior": {"type": "nope"}, "terms": [{"weight": 1.0}]}
    with pytest.raises(ValidationError) as caught:
        run_config_model(registry).model_validate(data, context={"registry": registry})
    lines = format_validation_error(caught.value, data, registry)
    assert lines == [f"prior.type: {registry.unknown_message('prior', 'nope')}",
                     "terms.0: missing 'type' key; available term types: " + ", ".join(registry.names("term"))]
