"""train-prior under torchrun (2 CPU processes, DistributedDataParallel over gloo): the same
weights as one process on the same global batch, and an exact --resume."""

import csv
import json

import numpy as np
import torch
from diffprior.testing import torchrun
from safetensors.torch import load_file

from diffprior_unet.training import TrainConfig, train

from unet_tiny_arch import TINY


def _recipe(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    bars = np.full((64, 1, 6, 6), -1.0, dtype=np.float32)
    bars[np.arange(64), 0, :, rng.integers(0, 6, 64)] = 1.0
    np.save(tmp_path / "bars.npy", bars)
    return {"name": "bars", "model": TINY, "noise": {"schedule": "linear", "T": 100},
            "data": {"source": "tensors", "path": "bars.npy", "hflip": True},
            "train": {"steps": 6, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2, "checkpoint_every": 1000,
                      "sample_count": 0, "mixed_precision": "none", "device": "cpu"}}


def _weights(out):
    tensors = load_file(str(out / "state.safetensors"))
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "ema."))}


def _losses(out):
    with open(out / "losses.csv") as f:
        return [float(row[1]) for row in csv.reader(f)]


def test_ddp_equals_one_process_on_the_global_batch_and_resumes(tmp_path):
    recipe = _recipe(tmp_path)
    path = tmp_path / "bars.json"  # JSON is a recipe format too
    path.write_text(json.dumps(recipe))
    single = tmp_path / "single"
    train(TrainConfig.model_validate(recipe, context={"base_dir": tmp_path}), single, progress=False,
          log=lambda *_: None)

    ddp = tmp_path / "ddp"
    first = torchrun(["train-prior", path, "--out", ddp, "--quiet", "--set", "train.steps=3"])
    assert first.returncode == 0, first.stderr
    resumed = torchrun(["train-prior", path, "--out", ddp, "--quiet", "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("resuming bars at step 3") == 1  # rank 0 speaks for both

    expected, got = _weights(single), _weights(ddp)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5, msg=key)
    np.testing.assert_allclose(_losses(ddp), _losses(single), rtol=1e-4, atol=2e-5)
    info = json.loads((ddp / "bars.json").read_text())["training"]
    assert info["global_batch_size"] == 8 and info["processes"] == 2 and info["budget"]["images_seen"] == 48
