import csv

import numpy as np
import pytest
import torch
from diffprior import ConfigError

from diffprior_unet.checkpoints import load_prior
from diffprior_unet.training import TrainConfig, load_train_config, train

from unet_tiny_arch import TINY


def _bars(n: int = 64) -> np.ndarray:
    """Tiny 6×6 images: one bright vertical bar at a random column on a dark background."""
    rng = np.random.default_rng(0)
    x = np.full((n, 1, 6, 6), -1.0, dtype=np.float32)
    x[np.arange(n), 0, :, rng.integers(0, 6, n)] = 1.0
    return x


def _config(tmp_path, **train_overrides) -> TrainConfig:
    np.save(tmp_path / "bars.npy", _bars())
    return TrainConfig.model_validate(
        {
            "name": "bars",
            "model": TINY,
            "noise": {"schedule": "linear", "T": 100},
            "data": {"source": "tensors", "path": "bars.npy"},  # padded from 6×6 to 8×8 with -1
            "train": {"steps": 150, "batch_size": 16, "lr": 3e-3, "warmup_steps": 10, "checkpoint_every": 1000,
                      "sample_count": 4, "sample_steps": 5, **train_overrides},
        },
        context={"base_dir": tmp_path},
    )


def _losses(out):
    with open(out / "losses.csv") as f:
        return [float(row[1]) for row in csv.reader(f)]


def test_training_loss_falls_and_writes_a_loadable_prior(tmp_path):
    out = tmp_path / "run"
    path = train(_config(tmp_path), out, progress=False, log=lambda *_: None)
    losses = _losses(out)
    assert len(losses) == 150
    assert np.mean(losses[-30:]) < 0.6 * np.mean(losses[:10])
    assert (out / "samples" / "step-000150.png").exists()
    prior = load_prior(path)
    assert prior.shape == (1, 8, 8) and prior.T == 100
    assert prior.metadata["training"]["steps"] == 150


def test_resume_continues_exactly_where_training_stopped(tmp_path):
    config = _config(tmp_path, steps=6, sample_count=0)
    straight = train(config, tmp_path / "straight", progress=False, log=lambda *_: None)
    half = config.model_copy(update={"train": config.train.model_copy(update={"steps": 3})})
    train(half, tmp_path / "resumed", progress=False, log=lambda *_: None)
    resumed = train(config, tmp_path / "resumed", resume=True, progress=False, log=lambda *_: None)
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 60])
    assert torch.equal(load_prior(straight).eps(x, t), load_prior(resumed).eps(x, t))


def test_training_refuses_to_overwrite_a_run_and_resume_needs_a_state(tmp_path):
    config = _config(tmp_path, steps=1, sample_count=0)
    with pytest.raises(ConfigError, match="no training state"):
        train(config, tmp_path / "fresh", resume=True, progress=False, log=lambda *_: None)
    train(config, tmp_path / "once", progress=False, log=lambda *_: None)
    with pytest.raises(ConfigError, match="--resume"):
        train(config, tmp_path / "once", progress=False, log=lambda *_: None)


def test_recipes_in_the_repo_are_valid():
    from pathlib import Path

    recipes = Path(__file__).parents[1] / "recipes"
    for name in ("digits.toml", "digits-gpu.toml"):
        config = load_train_config(recipes / name)
        assert config.name == "digits" and config.model.image_size == 32


def test_training_state_is_safetensors_and_a_planted_pickle_never_runs(tmp_path):
    """--resume reads only state.safetensors; a pickle planted as state.pt (the old format) or
    as state.safetensors is refused without executing anything."""
    import pickle

    config = _config(tmp_path, steps=2, sample_count=0)
    train(config, tmp_path / "run", progress=False, log=lambda *_: None)
    state = tmp_path / "run" / "state.safetensors"
    assert state.read_bytes()[8:9] == b"{"  # safetensors: 8-byte header length, then a JSON header
    assert not (tmp_path / "run" / "state.pt").exists()

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    state.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ConfigError, match="not a diffprior training state") as err:
        train(config, tmp_path / "run", resume=True, progress=False, log=lambda *_: None)
    assert str(state) in str(err.value) and not marker.exists()


def test_training_state_records_the_budget_over_sessions(tmp_path):
    config = _config(tmp_path, steps=4, sample_count=0)
    half = config.model_copy(update={"train": config.train.model_copy(update={"steps": 2})})
    train(half, tmp_path / "run", progress=False, log=lambda *_: None)
    path = train(config, tmp_path / "run", resume=True, progress=False, log=lambda *_: None)
    budget = load_prior(path).metadata["training"]["budget"]
    assert budget["steps"] == 4 and budget["images_seen"] == 4 * 16 and budget["sessions"] == 2
    assert budget["seconds"] > 0


def test_sigterm_stops_at_a_step_boundary_saves_and_resumes_exactly(tmp_path):
    """A scheduler's SIGTERM mid-run: the trainer finishes its step, saves, exits 0, and --resume
    continues as if never stopped (the same losses and weights as a straight run)."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    config = _config(tmp_path, steps=100_000, sample_count=0, checkpoint_every=100_000, mixed_precision="none")
    recipe = tmp_path / "bars.json"
    recipe.write_text(json.dumps(config.model_dump(mode="json") | {"data": {"source": "tensors", "path": "bars.npy"}}))
    run = tmp_path / "stopped"
    command = [sys.executable, "-m", "diffprior.cli", "train-prior", str(recipe), "--out", str(run), "--quiet"]
    proc = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not (run / "losses.csv").exists() or len(_losses(run)) < 5:  # some steps done
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    stopped_at = json.loads((run / "bars.json").read_text())["training"]["steps"]
    assert f"stopping at step {stopped_at}: SIGTERM received" in out + err
    assert len(_losses(run)) == stopped_at >= 5  # the log matches the saved state

    more = config.model_copy(update={"train": config.train.model_copy(update={"steps": stopped_at + 2})})
    resumed = train(more, run, resume=True, progress=False, log=lambda *_: None)
    straight = train(more, tmp_path / "straight", progress=False, log=lambda *_: None)
    assert _losses(run) == _losses(tmp_path / "straight")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 60])
    assert torch.equal(load_prior(straight).eps(x, t), load_prior(resumed).eps(x, t))


def test_resume_drops_loss_rows_past_the_saved_state(tmp_path):
    """After a crash the loss log can run past the last checkpoint; resuming keeps it in step."""
    config = _config(tmp_path, steps=4, sample_count=0)
    train(config, tmp_path / "run", progress=False, log=lambda *_: None)
    with open(tmp_path / "run" / "losses.csv", "a") as f:  # rows of steps lost in a crash
        f.write("5,0.5\n6,0.4\n")
    more = config.model_copy(update={"train": config.train.model_copy(update={"steps": 6})})
    train(more, tmp_path / "run", resume=True, progress=False, log=lambda *_: None)
    train(more, tmp_path / "straight", progress=False, log=lambda *_: None)
    assert _losses(tmp_path / "run") == _losses(tmp_path / "straight")


def test_learning_rate_warms_up_stays_then_cools_down_linearly():
    from diffprior_unet.training import OptimConfig, learning_rate

    constant = OptimConfig(lr=1e-3, warmup_steps=10)
    assert learning_rate(0, constant) == pytest.approx(1e-4)
    assert learning_rate(9, constant) == learning_rate(10_000, constant) == pytest.approx(1e-3)
    cooled = OptimConfig(lr=1e-3, warmup_steps=10, decay_start=100, decay_steps=50, final_lr=1e-5)
    assert learning_rate(99, cooled) == pytest.approx(1e-3)
    assert learning_rate(100, cooled) == pytest.approx(1e-3 - (1e-3 - 1e-5) / 50)
    assert learning_rate(124, cooled) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(149, cooled) == learning_rate(5000, cooled) == pytest.approx(1e-5)
    # a cool-down that starts inside the warm-up never raises the rate above the warm-up's
    early = OptimConfig(lr=1e-3, warmup_steps=10, decay_start=0, decay_steps=1000)
    assert learning_rate(0, early) == pytest.approx(1e-4)


def test_cooldown_settings_are_checked():
    with pytest.raises(ConfigError, match="decay_steps"):
        _recipe_from_table({"train": {"decay_start": 100}})
    with pytest.raises(ConfigError, match="final_lr"):
        _recipe_from_table({"train": {"lr": 1e-4, "final_lr": 1e-3, "decay_start": 0, "decay_steps": 5}})


def _recipe_from_table(table: dict):
    import tempfile
    from pathlib import Path

    import tomli_w

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipe.toml"
        path.write_bytes(tomli_w.dumps({"data": {"source": "bundled-digits"}, **table}).encode())
        return load_train_config(path)


def test_training_follows_the_cooldown_and_a_resumed_run_can_add_one(tmp_path):
    """final_lr = 0 from step 3: the weights after 6 steps are those after 3; a constant-rate run
    resumed with that cool-down is the same run as one configured with it from the start."""
    from safetensors.torch import load_file

    cooled = _config(tmp_path, steps=6, sample_count=0, decay_start=3, decay_steps=1, final_lr=0.0)
    train(cooled, tmp_path / "cooled", progress=False, log=lambda *_: None)
    first_three = _config(tmp_path, steps=3, sample_count=0)
    train(first_three, tmp_path / "three", progress=False, log=lambda *_: None)
    after_six = load_file(tmp_path / "cooled" / "state.safetensors")
    after_three = load_file(tmp_path / "three" / "state.safetensors")
    model_keys = [k for k in after_six if k.startswith("model.")]
    assert model_keys and all(torch.equal(after_six[k], after_three[k]) for k in model_keys)
    assert not all(torch.equal(after_six[k], after_three[k]) for k in after_six if k.startswith("ema."))

    resumed = train(cooled, tmp_path / "three", resume=True, progress=False, log=lambda *_: None)
    assert _losses(tmp_path / "three") == _losses(tmp_path / "cooled")
    assert load_prior(resumed).metadata["training"]["lr_now"] == 0.0
