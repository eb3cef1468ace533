"""Bad term parameters fail at config validation: ``diffprior run`` exits 2 with a clear message."""

import textwrap

import pytest

from diffprior.cli.main import main

PRIOR = """
[prior]
type = "gaussian"
shape = [1, 32, 32]
var = 0.25

[optimizer]
lr = 0.01
steps = 3
"""


def _run(tmp_path, capsys, term: str, *extra):
    path = tmp_path / "run.toml"
    path.write_text(textwrap.dedent(PRIOR) + "\n[[terms]]\n" + textwrap.dedent(term))
    code = main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet", *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "term, message",
    [
        ('type = "symmetry"\naxis = "diagonal"', "terms.0.axis: Input should be 'vertical' or 'horizontal'"),
        ('type = "intensity"\nmode = "thin"\nlevel = 2.0', "terms.0.level"),
        ('type = "classifier"\nmodel = "digits"\ntarget = 10', "target 10 is out of range: the classifier has 10 classes (0..9)"),
        ('type = "classifier"\nmodel = "digit"\ntarget = 3', "unknown model 'digit' (did you mean 'digits'?)"),
        ('type = "classifier"\nmodel = "digits-strokes"\ntarget = 3', "model 'digits-strokes' is a segmenter, not a classifier"),
        ('type = "classifier"\ntimm = "resnet18"\ncheckpoint = "missing.safetensors"\nnum_classes = 40\ntargets = [1]',
         "file not found"),
        ('type = "classifier"\ntimm = "resnet18"\ntarget = 1', "needs checkpoint = 'FILE' and num_classes = N"),
        ('type = "mask"\nimage = {split = "heldout", index = 500}', "index 500 is out of range: the 'heldout' split has 500 digits"),
        ('type = "mask"\nimage = {index = 0}\nregion = "top-hlf"', "unknown region 'top-hlf' (did you mean 'top-half'?)"),
        ('type = "segmentation"\nlabels = "nowhere.safetensors"', "file not found"),
    ],
)
def test_bad_parameter_exits_2_with_a_clear_message(tmp_path, capsys, term, message):
    code, err = _run(tmp_path, capsys, term)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_image_terms_run_end_to_end(tmp_path, capsys):
    term = 'type = "symmetry"\n[[terms]]\ntype = "classifier"\nmodel = "digits"\ntarget = 3\n'
    code, err = _run(tmp_path, capsys, term, "--batch", "2")
    assert code == 0, err
    import json

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    assert len(metrics["classifier.p_target"]) == 2 and len(metrics["symmetry.mse"]) == 2


def test_mask_file_with_wrong_shape_is_a_config_error(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    save_file({"image": torch.zeros(1, 16, 16)}, str(tmp_path / "known.safetensors"))
    code, err = _run(tmp_path, capsys, 'type = "mask"\nimage = "known.safetensors"\nregion = "center"')
    assert code == 2
    assert "does not fit the prior's samples [1, 32, 32]" in err
