"""Bad data and missing checkpoints stop with a message that names the file."""

import numpy as np
import pytest
import torch
from diffprior import ConfigError
from diffprior.cli.main import main
from diffprior import validate_config

from diffprior_unet.data_sources import load_training_data
from diffprior_unet.training import DataConfig


def _data(tmp_path, **fields):
    return DataConfig.model_validate(fields, context={"base_dir": tmp_path})


def test_empty_image_folder_names_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no image files") as err:
        load_training_data(_data(tmp_path, source="image-folder", path="empty"), 32, 1)
    assert "empty" in str(err.value)


def test_unreadable_image_names_the_file(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("L", (28, 28), 0).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="broken.png"):
        load_training_data(_data(tmp_path, source="image-folder", path="imgs"), 32, 1)


def test_image_folder_is_read_and_padded(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (28, 28), 255).save(folder / f"{i}.png")
    images = load_training_data(_data(tmp_path, source="image-folder", path="imgs"), 32, 1)
    assert images.shape == (3, 1, 32, 32)
    assert images[:, :, 2:30, 2:30].eq(1).all() and images[:, :, :2].eq(-1).all()


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 2, 2, 8, 8), np.float32), r"expected images \[N, C, H, W\]"),
        (np.zeros((4, 3, 8, 8), np.float32), "3 channel"),
        (np.zeros((0, 1, 8, 8), np.float32), "no images"),
        (np.full((4, 1, 8, 8), 200.0, np.float32), "value_range"),
        (np.zeros((4, 1, 64, 64), np.float32), "larger than the model"),
    ],
)
def test_bad_tensors_name_the_file_and_the_problem(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ConfigError, match=message) as err:
        load_training_data(_data(tmp_path, source="tensors", path="bad.npy"), 32, 1)
    assert "bad.npy" in str(err.value)


def test_corrupt_idx_file_is_reported(tmp_path):
    (tmp_path / "images.idx").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 5)
    with pytest.raises(ConfigError, match="images.idx"):
        load_training_data(_data(tmp_path, source="mnist-idx", path="images.idx"), 32, 1)


def test_idx_file_round_trip(tmp_path):
    import struct

    pixels = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    (tmp_path / "imgs-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 28, 28) + pixels.tobytes())
    images = load_training_data(_data(tmp_path, source="mnist-idx", path="imgs-idx3-ubyte"), 32, 1)
    assert images.shape == (2, 1, 32, 32)
    assert torch.allclose(images[0, 0, 2, 2], torch.tensor(-1.0))  # pixel value 0


def test_missing_data_path_is_a_validation_error(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="file not found"):
        _data(tmp_path, source="tensors", path="nowhere.npy")
    with pytest.raises(ValidationError, match="needs path"):
        _data(tmp_path, source="image-folder")


def test_unknown_checkpoint_lists_bundled_names(tmp_path):
    with pytest.raises(ConfigError, match=r"prior.checkpoint: .*not found.*give a bundled name \(.*digits") as err:
        validate_config({"prior": {"type": "unet", "checkpoint": "no-such-prior"}}, base_dir=tmp_path)
    assert "no-such-prior" in str(err.value)


def test_sample_command_with_missing_checkpoint_exits_2(tmp_path, capsys):
    code = main(["sample", str(tmp_path / "missing.safetensors"), "-n", "1", "--out", str(tmp_path / "x.png")])
    assert code == 2
    assert "not found" in capsys.readouterr().err


def test_train_prior_with_bad_recipe_exits_2(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[train]\nstepz = 3\n')
    assert main(["train-prior", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert "train.stepz: unknown key" in capsys.readouterr().err
