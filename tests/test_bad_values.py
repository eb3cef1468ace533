"""Bad values that need more than the config file's own keys: the prior's declared T and
shape (from a checkpoint's JSON, no weights loaded), shapes known only once built, and the
memory estimate. The single-key cases are files in tests/configs/broken/."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from diffprior.config.checks import memory_problem
from diffprior.cli.main import main


def write(tmp_path, text):
    cfg = tmp_path / "run.toml"
    cfg.write_text(text)
    return cfg


def test_denoise_beyond_the_unet_checkpoints_T_is_found_without_loading_weights(tmp_path, capsys, monkeypatch):
    cfg = write(tmp_path, '[prior]\ntype = "unet"\ncheckpoint = "digits"\n\n[denoise]\nfrom_t = 1500\n')
    assert main(["validate", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "denoise.from_t: 1500 is beyond the prior's last timestep 999 (T = 1000)" in err
    import diffprior_unet.checkpoints as checkpoints

    def no_weights(*args, **kwargs):
        raise AssertionError("validate loaded the weights")

    monkeypatch.setattr(checkpoints, "load_checkpoint", no_weights)
    assert main(["validate", str(cfg)]) == 2


def test_a_target_of_another_shape_than_a_checkpoint_prior_is_refused_before_optimising(tmp_path, capsys):
    save_file({"mean": torch.zeros(1, 8, 8), "var": torch.ones(1, 8, 8)}, str(tmp_path / "prior.safetensors"))
    save_file({"target": torch.zeros(8, 8)}, str(tmp_path / "target.safetensors"))  # once silently broadcast
    cfg = write(tmp_path, '[prior]\ntype = "gaussian"\ncheckpoint = "prior.safetensors"\n\n'
                          '[[terms]]\ntype = "match"\ntarget = "target.safetensors"\n\n[optimizer]\nsteps = 2\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "has shape (8, 8); the prior's samples have shape (1, 8, 8)" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_boolean_for_a_plugins_number_is_refused(tmp_path, capsys):
    cfg = write(tmp_path, '[prior]\ntype = "gaussian"\nshape = [2]\n\n[[terms]]\ntype = "match"\nnoise = true\n')
    assert main(["validate", str(cfg)]) == 2
    assert "noise must be a number, not true" in capsys.readouterr().err


@pytest.mark.parametrize("batch, available, refused", [(10, 10**9, False), (10**6, 10**8, True)])
def test_the_memory_estimate(batch, available, refused):
    problem = memory_problem(batch, (1, 32, 32), available=available)
    assert bool(problem) == refused
    if refused:  # the figures: 10^6 samples x 1024 values x 4 bytes x 10 copies = 41 GB; 100 MB fit 2441
        assert "need at least 41 GB" in problem and "use batch_size <= 2441" in problem


def test_term_names_must_differ(tmp_path, capsys):
    cfg = write(tmp_path, '[prior]\ntype = "gaussian"\nshape = [2]\n\n[[terms]]\ntype = "match"\nname = "a"\n\n'
                          '[[terms]]\ntype = "match"\nname = "a"\n')
    assert main(["validate", str(cfg)]) == 2
    assert "two terms are called 'a'" in capsys.readouterr().err
