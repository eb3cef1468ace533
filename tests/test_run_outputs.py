"""`diffprior run` end to end: the files it writes, reproducibility, and failure handling."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffprior import GaussianPrior, NoiseSchedule, NonFiniteError, Options, Pixels, Term, WeightedTerm, optimize
from diffprior.cli.main import main
from diffprior.errors import ConfigError
from diffprior.config.run_config import validate_config

EXAMPLE = Path(__file__).parents[1] / "examples" / "gaussian.toml"


def test_run_writes_pictures_tensors_metrics_and_config(tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(EXAMPLE), "--out", str(out), "--quiet", "--set", "optimizer.steps=60", "--seed", "5"]) == 0
    for name in ("samples.png", "losses.png", "samples.safetensors", "metrics.json", "config.resolved.toml"):
        assert (out / name).stat().st_size > 0, name
    tensors = load_file(str(out / "samples.safetensors"))
    assert tensors["x"].shape == (4, 1, 16, 16)
    assert tensors["seeds"].tolist() == [5, 6, 7, 8]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["metrics"]["match.log_c"]) == 4 and metrics["steps_done"] == 60

    # the resolved config is a complete, valid config that reproduces the run exactly
    again = tmp_path / "again"
    assert main(["run", str(out / "config.resolved.toml"), "--out", str(again), "--quiet"]) == 0
    torch.testing.assert_close(load_file(str(again / "samples.safetensors"))["x"], tensors["x"])


class _Exploding(Term):
    def log_c(self, x):
        return torch.log(x.flatten(1).mean(1) - 10.0)  # log of a negative number: NaN


def test_nan_guard_names_the_term_and_step():
    prior = GaussianPrior(torch.zeros(4), torch.ones(4), NoiseSchedule.linear(1000))
    with pytest.raises(NonFiniteError, match=r"term 'explode' is not finite at step 0 \(samples \[0, 1\]\)"):
        optimize(prior, Pixels(prior), [WeightedTerm("explode", _Exploding(None, None))], [0, 1], Options(optimizer={"steps": 5}))


def test_interrupt_keeps_partial_results():
    prior = GaussianPrior(torch.zeros(4), torch.ones(4), NoiseSchedule.linear(1000))

    def stop_at_7(state):
        if state.step == 7:
            raise KeyboardInterrupt

    result = optimize(prior, Pixels(prior), [], [0], Options(optimizer={"steps": 50}), callbacks=[stop_at_7])
    assert result.interrupted and result.steps_done == 7 and result.losses["prior"].shape == (8, 1)
    assert torch.isfinite(result.x).all()


def test_a_kept_step_state_holds_the_x_of_its_own_step():
    # Pixels' x is the optimised tensor itself: a callback keeping it must not see later steps
    prior = GaussianPrior(torch.zeros(4), torch.ones(4), NoiseSchedule.linear(1000))
    start = torch.tensor([3.0, -2.0, 1.0, 0.5])
    states = []
    result = optimize(prior, Pixels(prior), [], [0], Options(optimizer={"type": "sgd", "steps": 4, "lr": 0.5}),
                      init_params=start, callbacks=[states.append])
    kept = [state.x for state in states]
    assert torch.equal(kept[0], start[None])  # step 0's losses were computed at the start
    assert all(not torch.equal(a, b) for a, b in zip(kept, kept[1:] + [result.x_optimized]))
    # and the rest of each state is that step's too
    assert [(s.step, s.steps) for s in states] == [(i, 4) for i in range(4)]
    for i, state in enumerate(states):
        assert torch.equal(state.t, result.timesteps[i]) and torch.equal(state.losses["prior"], result.losses["prior"][i])


def test_cuda_request_without_cuda_is_a_clear_input_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["run", str(EXAMPLE), "--out", str(tmp_path), "--device", "cuda", "--quiet"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def _schema_from_cli(capsys) -> dict:
    assert main(["schema"]) == 0
    return json.loads(capsys.readouterr().out)


def test_schema_lists_exactly_the_installed_types(capsys):
    from diffprior.plugins.registry import get_registry

    schema = _schema_from_cli(capsys)
    registry = get_registry()
    unions = {"prior": schema["properties"]["prior"], "variable": schema["properties"]["variable"],
              "term": schema["properties"]["terms"]["items"]}
    for kind, union in unions.items():
        mapping = union["discriminator"]["mapping"]
        assert union["discriminator"]["propertyName"] == "type"
        assert sorted(mapping) == registry.names(kind), kind
        assert sorted(ref["$ref"] for ref in union["oneOf"]) == sorted(mapping.values())
        for name, ref in mapping.items():
            definition = schema["$defs"][ref.split("/")[-1]]
            assert definition["properties"]["type"]["const"] == name
            assert definition["additionalProperties"] is False  # editors flag misspelt keys
    schedules = {key.split(":", 1)[1] for key in schema["$defs"] if key.startswith("schedule:")}
    assert sorted(schedules) == registry.names("schedule")
    assert schema["$defs"]["schedule:linear"]["required"] == ["start", "end"]
    assert schema["required"] == ["prior"] and schema["additionalProperties"] is False


def test_schema_accepts_the_examples_and_rejects_what_validation_rejects(capsys):
    import tomllib

    import jsonschema

    schema = _schema_from_cli(capsys)
    validator = jsonschema.validators.validator_for(schema)(schema)
    examples = sorted(EXAMPLE.parent.glob("*.toml"))
    assert len(examples) >= 5
    for path in examples:
        errors = [e.message for e in validator.iter_errors(tomllib.loads(path.read_text()))]
        assert not errors, f"{path.name}: {errors}"
    base = {"prior": {"type": "gaussian", "shape": [2]}}
    assert validator.is_valid(base | {"terms": [{"type": "match", "weight": {"linear": [1, 0]}}]})
    for bad in (base | {"terms": [{"type": "nope"}]}, {"prior": {"type": "gaussian", "shape": [2], "colour": 1}},
                base | {"optimizer": {"steps": 0}}, base | {"batch": "two"}, {"variable": {"type": "pixels"}}):
        assert not validator.is_valid(bad), bad
        with pytest.raises(ConfigError):
            validate_config(bad)


def test_minimal_config_uses_every_default(tmp_path):
    cfg = tmp_path / "minimal.toml"
    cfg.write_text('[prior]\ntype = "gaussian"\nshape = [2]\n\n[optimizer]\nsteps = 2\n')
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    resolved = (out / "config.resolved.toml").read_text()
    assert "[optimizer.lr]" in resolved and "cosine-linear" in resolved


def test_a_numerical_failure_keeps_the_steps_before_it(tmp_path, capsys):
    cfg = tmp_path / "explode.toml"
    # a huge learning rate throws the parameters to ~1e20 at step 0; and the losses overflow a step or two later
    cfg.write_text(
        '[prior]\ntype = "gaussian"\nshape = [4]\n\n[[terms]]\ntype = "match"\ntarget = 1.0\nnoise = 1.0\n'
        '\n[optimizer]\ntype = "sgd"\nlr = 1e20\nsteps = 50\n'
    )
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "not finite at step" in err and "partial results" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["steps_done"] >= 1
    assert "Traceback" not in err
    assert torch.isfinite(load_file(str(out / "samples.safetensors"))["params"]).all()


def test_saved_x_is_what_the_grid_shows_clipped_to_the_data_range(tmp_path):
    from diffprior.config.files import load_config
    from diffprior.method.optimizer import Result
    from diffprior.runs.outputs import write_run

    config = load_config(EXAMPLE)
    prior = GaussianPrior(torch.zeros(1, 4, 4), torch.ones(1, 4, 4), NoiseSchedule.linear(1000), data_range=(-1.0, 1.0))
    x = torch.linspace(-2, 2, 32).view(2, 1, 4, 4)
    result = Result(x=x, x_optimized=x, params=x, seeds=[0, 1], losses={}, timesteps=torch.zeros(0, 2),
                    metrics={}, steps_done=0)
    write_run(tmp_path, config, result, prior)
    tensors = load_file(str(tmp_path / "samples.safetensors"))
    torch.testing.assert_close(tensors["x"], x.clamp(-1, 1))
    torch.testing.assert_close(tensors["x_unclipped"], x)
    inside = Result(x=x / 4, x_optimized=x / 4, params=x, seeds=[0, 1], losses={}, timesteps=torch.zeros(0, 2),
                    metrics={}, steps_done=0)
    write_run(tmp_path / "inside", config, inside, prior)
    assert "x_unclipped" not in load_file(str(tmp_path / "inside" / "samples.safetensors"))
