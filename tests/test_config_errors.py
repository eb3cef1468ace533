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
