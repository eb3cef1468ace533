"""The plugin from the command line: simulate → run, per-sample measurements, one-line errors (exit 2)."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from diffprior.cli.main import main
from diffprior.testing import check_config, check_lazy_import, check_plugin, check_term
from diffprior_deepinv.plugin import PhysicsConfig

RUN = """
[prior]
type = "gaussian"
shape = [1, 8, 8]
var = 0.25

[optimizer]
lr = 0.05
steps = 5

[[terms]]
type = "physics"
"""


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "clean"
    folder.mkdir()
    g = np.random.default_rng(0)
    for i in range(3):
        np.save(folder / f"{i:02d}.npy", g.random((1, 8, 8)).astype(np.float32))
    return folder


def _simulate(images, out, *args):
    return main(["deepinv", "simulate", str(images), "--out", str(out), *args])


def _run(tmp_path, term, *extra):
    path = tmp_path / "run.toml"
    path.write_text(textwrap.dedent(RUN) + textwrap.dedent(term))
    return main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet", *extra])


def test_simulate_writes_measurements_clean_images_and_the_mask(images, tmp_path):
    from safetensors.torch import load_file

    assert _simulate(images, tmp_path / "m", "--operator", "inpainting", "--ratio", "0.5", "--sigma", "0.01") == 0
    tensors = load_file(str(tmp_path / "m" / "measurements.safetensors"))
    clean = load_file(str(tmp_path / "m" / "clean.safetensors"))["clean"]
    assert tensors["measurement"].shape == (3, 1, 8, 8) and tensors["mask"].shape == (1, 8, 8)
    assert sorted(p.name for p in (tmp_path / "m" / "clean").iterdir()) == ["00.npy", "01.npy", "02.npy"]
    torch.testing.assert_close(clean[1], torch.from_numpy(np.load(images / "01.npy")))
    # y = M ⊙ u + noise(0.01): observed pixels near the clean ones, hidden ones zero
    observed = tensors["mask"].bool().expand(3, 1, 8, 8)
    assert (tensors["measurement"][observed] - clean[observed]).abs().max() < 0.06
    assert 0.2 < tensors["mask"].mean() < 0.8


def test_sample_i_sees_measurement_i(images, tmp_path, capsys):
    """With a stack of measurements, permuting them permutes the restorations."""
    from safetensors.torch import load_file, save_file

    assert _simulate(images, tmp_path / "m", "--operator", "downsampling", "--factor", "2", "--sigma", "0.01") == 0
    y = load_file(str(tmp_path / "m" / "measurements.safetensors"))["measurement"]
    save_file({"measurement": y[[2, 0, 1]].contiguous()}, str(tmp_path / "permuted.safetensors"))
    outputs = []
    for name, target in (("a", tmp_path / "m" / "measurements.safetensors"), ("b", tmp_path / "permuted.safetensors")):
        run_dir = tmp_path / name
        run_dir.mkdir()
        path = run_dir / "run.toml"
        path.write_text(textwrap.dedent(RUN) + f'operator = "downsampling"\nfactor = 2\nsigma = 0.01\ntarget = "{target}"\nweight = 0.01\n')
        code = main(["run", str(path), "--out", str(run_dir / "out"), "--quiet", "--batch", "3"])
        assert code == 0, capsys.readouterr().err
        metrics = json.loads((run_dir / "out" / "metrics.json").read_text())["metrics"]
        outputs.append(metrics["physics.residual"])
    a, b = outputs
    assert len(a) == 3
    # same seeds, measurements rotated: residuals differ unless each sample reads its own row
    assert a != b


@pytest.mark.parametrize("term, message", [
    ('operator = "inpaint"\nratio = 0.5\ntarget = "y.npy"\n', "unknown operator 'inpaint' (did you mean 'inpainting'?)"),
    ('operator = "downsampling"\ntarget = "y.npy"\n', "has shape [1, 8, 8]; the operator's output has shape [1, 4, 4]"),
    ('operator = "compressed-sensing"\ntarget = "y.npy"\n', "compressed-sensing needs measurements = M"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, term, message):
    np.save(tmp_path / "y.npy", np.zeros((1, 8, 8), np.float32))
    code = _run(tmp_path, term)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_simulate_unknown_operator_exits_2_writing_nothing(images, tmp_path, capsys):
    assert _simulate(images, tmp_path / "m", "--operator", "blurr") == 2
    err = capsys.readouterr().err
    assert "unknown operator 'blurr' (did you mean 'blur'?)" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_simulate_unreadable_image_names_it(images, tmp_path, capsys):
    (images / "03.png").write_bytes(b"not a png")
    assert _simulate(images, tmp_path / "m", "--operator", "denoising") == 2
    assert "03.png cannot be read" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("operator, params", [
    ("inpainting", {"ratio": 0.3}), ("downsampling", {"factor": 4}), ("blur", {"width": 1.5}),
    ("compressed-sensing", {"measurements": 100}), ("denoising", {}),
])
def test_term_conformance(tmp_path, operator, params):
    from diffprior_deepinv.operators import OperatorSpec
    from diffprior_deepinv.physics import output_shape

    physics = OperatorSpec(operator=operator, **params).build_physics((1, 16, 16))
    np.save(tmp_path / "y.npy", np.full(output_shape(physics, (1, 16, 16)), 0.3, np.float32))
    params = {"operator": operator, "target": "y.npy", **params}
    check_config(PhysicsConfig, params, base_dir=tmp_path)
    check_term(PhysicsConfig, params, prior=(1, 16, 16), base_dir=tmp_path)


def test_plugin_loads_strictly_and_imports_no_deepinv():
    check_plugin("diffprior-deepinv", expect={"term": ["physics"], "command": ["deepinv"]})
    check_lazy_import("diffprior_deepinv.plugin", forbidden=["torch", "deepinv"])
    check_lazy_import("diffprior_deepinv", forbidden=["torch", "deepinv"])
    code = "import sys; from diffprior.cli.main import main\ntry: main(['--help'])\nexcept SystemExit: pass\nprint('deepinv' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_each_sample_scores_its_own_row_of_the_stack(tmp_path):
    """Sample i of a shard is sample indices[i] of the run: it scores measurement indices[i],
    exactly as a term built on that one measurement alone does."""
    from safetensors.torch import save_file

    from diffprior import BuildContext, GaussianPrior, NoiseSchedule

    prior = GaussianPrior(torch.zeros(1, 8, 8), torch.ones(1, 8, 8), NoiseSchedule.linear(100))
    stack = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    save_file({"measurement": stack}, str(tmp_path / "stack.safetensors"))
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    params = {"type": "physics", "operator": "downsampling", "factor": 2}
    term = PhysicsConfig(target=tmp_path / "stack.safetensors", **params).build(BuildContext(prior=prior, seeds=[7, 8], indices=[3, 1]))
    for i, row in enumerate([3, 1]):
        save_file({"measurement": stack[row].contiguous()}, str(tmp_path / f"one{row}.safetensors"))
        alone = PhysicsConfig(target=tmp_path / f"one{row}.safetensors", **params).build(BuildContext(prior=prior))
        torch.testing.assert_close(term.log_c(x)[i], alone.log_c(x[i:i + 1])[0])
    with pytest.raises(Exception, match="holds 4 measurements"):
        PhysicsConfig(target=tmp_path / "stack.safetensors", **params).build(BuildContext(prior=prior, indices=[4]))
