"""Data files are data: a checkpoint or target that is truncated, corrupted or not
safetensors is exit 2 with one line naming the file, and a planted pickle never runs."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffprior.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
UNET_WEIGHTS = ROOT / "plugins" / "diffprior-unet" / "diffprior_unet" / "weights"


class Planted:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pickle code ran"))


def corrupt(kind: str, good: Path, bad: Path, marker: Path) -> None:
    data = good.read_bytes()
    if kind == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "garbage-header":
        bad.write_bytes(b"\xff" * 8 + data[8:])
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "pickle":
        bad.write_bytes(pickle.dumps({"target": Planted(marker)}))
    elif kind == "torch-save":
        torch.save({"target": torch.zeros(4)}, bad)


KINDS = ["truncated", "garbage-header", "empty", "pickle", "torch-save"]

CONFIGS = {  # where the file goes: (config text with {file}, the tensors of a good file)
    "prior.checkpoint": ('[prior]\ntype = "gaussian"\ncheckpoint = "{file}"\n',
                         {"mean": torch.zeros(1, 4, 4), "var": torch.ones(1, 4, 4)}),
    "match target": ('[prior]\ntype = "gaussian"\nshape = [1, 4, 4]\n\n[[terms]]\ntype = "match"\ntarget = "{file}"\n',
                     {"target": torch.zeros(1, 4, 4)}),
    "init.path": ('[prior]\ntype = "gaussian"\nshape = [1, 4, 4]\n\n[init]\ntype = "file"\npath = "{file}"\n',
                  {"params": torch.zeros(1, 4, 4)}),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("place", list(CONFIGS))
def test_a_bad_tensor_file_is_one_line_naming_it(tmp_path, capsys, place, kind):
    text, tensors = CONFIGS[place]
    good, bad, marker = tmp_path / "good.safetensors", tmp_path / "data.safetensors", tmp_path / "ran.txt"
    save_file(tensors, str(good))
    corrupt(kind, good, bad, marker)
    cfg = tmp_path / "run.toml"
    cfg.write_text(text.format(file=bad.name) + "\n[optimizer]\nsteps = 2\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(bad) in err, err
    assert "not a readable safetensors file" in err
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["truncated", "pickle"])
def test_a_bad_unet_checkpoint_is_one_line_naming_it(tmp_path, capsys, kind):
    bad = tmp_path / "prior.safetensors"
    shutil.copy(UNET_WEIGHTS / "digits.json", tmp_path / "prior.json")
    corrupt(kind, UNET_WEIGHTS / "digits.safetensors", bad, tmp_path / "ran.txt")
    cfg = tmp_path / "run.toml"
    cfg.write_text('[prior]\ntype = "unet"\ncheckpoint = "prior.safetensors"\n\n[optimizer]\nsteps = 1\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "Traceback" not in err, err
    assert not (tmp_path / "ran.txt").exists()


def test_saved_weights_come_back_as_written_with_their_metadata_and_readable_permissions(tmp_path):
    from diffprior import load_tensors, save_weights

    state = {"w": torch.linspace(-1, 1, 7, dtype=torch.float64), "b": torch.tensor([3.0])}
    umask = os.umask(0o022)  # the usual one; safetensors alone would still write 0600
    try:
        path = save_weights(tmp_path / "sub" / "model", state, {"name": "m", "n": 2}, dtype="float16",
                            file_format="test-format")
    finally:
        os.umask(umask)
    assert path == tmp_path / "sub" / "model.safetensors"
    back = load_tensors(path)
    assert back["w"].dtype == torch.float16 and torch.equal(back["w"], state["w"].half())
    assert __import__("json").loads(path.with_suffix(".json").read_text()) == {"name": "m", "n": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.json", "model.safetensors"]  # no temporaries
    for written in (path, path.with_suffix(".json")):
        assert written.stat().st_mode & 0o044 == 0o044  # others can read a bundled checkpoint
