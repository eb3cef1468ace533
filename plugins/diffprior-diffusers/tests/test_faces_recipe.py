"""The faces recipe end to end on tiny stand-ins: a tiny RGB diffusers prior saved by diffusers,
and a tiny attribute classifier trained by ``diffprior train-classifier attributes`` from an
image folder and a CelebA-layout attribute CSV made here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffprior import load_config
from diffprior.cli.main import main

from tiny_models import save_pipeline

RECIPE = Path(__file__).parents[3] / "examples" / "faces-attributes.toml"
CELEBA = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
          "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
          "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
          "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
          "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """(pipeline folder, classifier .safetensors) of tiny stand-ins."""
    from PIL import Image

    root = tmp_path_factory.mktemp("faces")
    images = root / "img_align_celeba"
    images.mkdir()
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(24):
        name = f"{i + 1:06d}.jpg"
        pixels = (torch.rand(22, 18, 3, generator=g) * 255).to(torch.uint8)  # CelebA's portrait aspect, tiny
        Image.fromarray(pixels.numpy()).save(images / name)
        rows.append([name] + [str(1 if torch.rand(1, generator=g) < 0.4 else -1) for _ in CELEBA])
    table = root / "list_attr_celeba.csv"
    table.write_text("\n".join([",".join(["image_id", *CELEBA])] + [",".join(r) for r in rows]) + "\n")
    models = root / "models"
    assert main(["train-classifier", "attributes", "--images", str(images), "--attributes", str(table),
                 "--out", str(models), "--arch", "test_resnet", "--image-size", "32", "--epochs", "1",
                 "--batch", "8", "--quiet"]) == 0
    pipeline = save_pipeline(root / "tiny-faces", T=1000, size=16)
    return pipeline, models / "celeba-attributes.safetensors"


def _overrides(stand_ins):
    pipeline, classifier = stand_ins
    return [f"prior.model={json.dumps(str(pipeline))}", "prior.gradient_checkpointing=false",
            f"terms.0.checkpoint={json.dumps(str(classifier))}"]


def test_the_classifier_is_self_describing(stand_ins):
    meta = json.loads(stand_ins[1].with_suffix(".json").read_text())
    assert meta["attributes"] == CELEBA and meta["timm"] == "test_resnet" and meta["input_size"] == 32
    assert meta["trained_on"]["rows"] == 24 and meta["trained_on"]["validation_rows"] == 2
    assert 0.0 <= meta["val_accuracy_mean"] <= 1.0 and meta["val_majority_accuracy_mean"] is not None


def test_the_recipe_is_the_papers(stand_ins):
    config = load_config(RECIPE, _overrides(stand_ins))
    assert config.optimizer.type == "adamax" and config.optimizer.lr(0.0) == 1.0 and config.optimizer.steps == 200
    assert config.denoise.from_t == 200 and config.denoise.steps == 200 and config.denoise.method == "ddpm"
    term = config.terms[0]
    assert term.type == "attributes" and term.augment.copies == 8 and term.augment.blur == 5.0
    assert term.resolved_clip().mode == "relative" and term.resolved_clip().value(0.0) == pytest.approx(0.1)
    # t_i = ((S−i)/1.5 + (S−i)/3·cos(i/10))/S·800 + 200, jitter ±50
    S = 200
    for i in (0, 17, 150):
        expected = ((S - i) / 1.5 + (S - i) / 3 * torch.cos(torch.tensor(i / 10)).item()) / S * 800 + 200
        assert config.timesteps.at_step(i, S) == pytest.approx(expected)
    assert config.timesteps.jitter == 50


def test_recipe_validates_and_runs_two_steps(stand_ins, tmp_path, capsys):
    sets = [f"--set={o}" for o in _overrides(stand_ins)]
    assert main(["validate", str(RECIPE), *sets]) == 0
    out = tmp_path / "faces"
    code = main(["run", str(RECIPE), *sets, "--set=optimizer.steps=2", "--set=denoise.steps=3", "--batch", "2",
                 "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    text = json.dumps(metrics)
    assert "attributes_hit" in text and "attributes.log_c" in text
    assert (out / "samples.png").exists()


def test_unknown_attribute_names_are_reported(stand_ins, capsys):
    sets = [f"--set={o}" for o in _overrides(stand_ins)]
    assert main(["validate", str(RECIPE), *sets, "--set=terms.0.want={Smilling = 1}"]) == 2
    assert "did you mean 'Smiling'" in capsys.readouterr().err
