"""tsp solve/eval under torchrun (2 CPU processes) and as --shard parts joined by
`diffprior merge`: the same tours and the same figures as one process."""

import hashlib
import json

import numpy as np
import pytest
import torch

from diffprior.cli.main import main
from diffprior.testing import torchrun
from diffprior_tsp.instances import random_instances, read_instances, solve_reference, write_instances
from diffprior_tsp.solver import mark_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An untrained 16×16 tour prior for 6 cities and 5 labelled instances."""
    from diffprior import NoiseSchedule
    from diffprior_unet.checkpoints import save_checkpoint
    from diffprior_unet.config import UNetArchitecture
    from diffprior_unet.model import UNet

    folder = tmp_path_factory.mktemp("tsp-scaling")
    torch.manual_seed(0)
    arch = UNetArchitecture(image_size=16, channels=8, channel_mult=[1, 2], attention_resolutions=[], dropout=0.0)
    prior = mark_checkpoint(save_checkpoint(UNet(arch), folder / "tiny", noise=NoiseSchedule.linear(100)), cities=6)
    coords = random_instances(5, 6, seed=31)
    path = folder / "six.txt"
    write_instances(path, coords, [solve_reference(c) for c in coords])
    return folder, path, ["--checkpoint", str(prior), "--steps", "3", "--batch-size", "2", "--quiet"]


def _figures(path):
    """Everything in an eval JSON but wall times."""
    data = json.loads(path.read_text())
    for row in data["rows"]:
        row.pop("seconds_per_instance")
    return data


EVAL = ["--restarts", "3", "--samples", "2", "--no-matched-time", "--no-lkh"]


def test_eval_in_two_processes_and_in_merged_shards_equals_one_process(setup, capsys):
    folder, path, common = setup
    assert main(["tsp", "eval", str(path), *common, *EVAL, "--json", str(folder / "single.json"),
                 "--heatmaps", str(folder / "single.npz")]) == 0
    proc = torchrun(["tsp", "eval", path, *common, *EVAL, "--json", folder / "launched.json",
                     "--heatmaps", folder / "launched.npz"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("TSP-6: 5 instances") == 1  # rank 0 reports for both
    single = _figures(folder / "single.json")
    assert _figures(folder / "launched.json") == single
    one, two = np.load(folder / "single.npz"), np.load(folder / "launched.npz")  # rank 0 saves both ranks'
    assert one["adjacency"].shape == two["adjacency"].shape == (5, 2, 6, 6)
    np.testing.assert_array_equal(two["index"], np.arange(5))
    np.testing.assert_allclose(two["adjacency"], one["adjacency"], atol=1e-6)

    # 3 batches of 2 instances: shard 0/2 holds instances 0..1, shard 1/2 instances 2..4
    for i in (1, 0):
        assert main(["tsp", "eval", str(path), *common, *EVAL, "--shard", f"{i}/2",
                     "--json", str(folder / f"part{i}.json"), "--heatmaps", str(folder / f"part{i}.npz")]) == 0
    assert json.loads((folder / "part1.json").read_text())["rows"] == [2, 5]
    np.testing.assert_array_equal(np.load(folder / "part1.npz")["index"], [2, 3, 4])
    np.testing.assert_allclose(np.load(folder / "part1.npz")["adjacency"], one["adjacency"][2:], atol=1e-6)
    capsys.readouterr()
    assert main(["merge", str(folder / "part1.json"), "--out", str(folder / "merged.json")]) == 2
    assert "missing shard(s) 0/2" in capsys.readouterr().err
    assert main(["merge", str(folder / "part0.json"), str(folder / "part1.json"),
                 "--out", str(folder / "merged.json")]) == 0
    assert _figures(folder / "merged.json") == single
    assert "diffprior, best of 2 samples, greedy + 2-opt" in capsys.readouterr().out

    # a part written from another directory names the same file by another path: still one evaluation
    part0 = json.loads((folder / "part0.json").read_text())
    (folder / "moved0.json").write_text(json.dumps(part0 | {"instances_file": "/elsewhere/six.txt"}))
    assert main(["merge", str(folder / "moved0.json"), str(folder / "part1.json"),
                 "--out", str(folder / "moved.json")]) == 0
    assert _figures(folder / "moved.json") == single
    (folder / "other0.json").write_text(json.dumps(part0 | {"instances_file": str(folder / "seven.txt")}))
    capsys.readouterr()
    assert main(["merge", str(folder / "other0.json"), str(folder / "part1.json"),
                 "--out", str(folder / "other.json")]) == 2
    assert "differs in instances_file" in capsys.readouterr().err
    # a file of the same name with other instances in it: told apart by the recorded digest
    assert part0["instances_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "edited0.json").write_text(json.dumps(part0 | {"instances_sha256": "0" * 64}))
    assert main(["merge", str(folder / "edited0.json"), str(folder / "part1.json"),
                 "--out", str(folder / "edited.json")]) == 2
    assert "differs in instances_sha256" in capsys.readouterr().err
    # a part written before digests (and the uniform weight) were recorded joins by the file's name
    older = {k: v for k, v in part0.items() if k not in ("instances_sha256", "uniform_weight")}
    (folder / "older0.json").write_text(json.dumps(older))
    assert main(["merge", str(folder / "older0.json"), str(folder / "part1.json"),
                 "--out", str(folder / "older.json")]) == 0
    assert _figures(folder / "older.json") == single
    (folder / "mixed0.json").write_text(json.dumps(part0 | {"uniform_weight": 0.1}))
    assert main(["merge", str(folder / "mixed0.json"), str(folder / "part1.json"),
                 "--out", str(folder / "mixed.json")]) == 2
    assert "differs in uniform_weight" in capsys.readouterr().err

    # `tsp report` reads the parts present as one evaluation of their instances (2..4 here)
    assert main(["tsp", "report", str(folder / "part1.json"), "--json", str(folder / "report.json"),
                 "--plot", str(folder / "report.png")]) == 0
    out = capsys.readouterr().out
    assert "shards 1 of 2 (3 of 5 instances)" in out and "TSP-6: 3 instances" in out
    from PIL import Image
    with Image.open(folder / "report.png") as picture:
        assert picture.size[0] > 200 and picture.size[1] > 200
    partial = json.loads((folder / "report.json").read_text())["per_instance_gap_percent"]
    whole = single["per_instance_gap_percent"]
    assert partial.keys() == whole.keys()
    assert all(partial[k] == whole[k][2:] for k in whole)
    (folder / "other.json").write_text(json.dumps({"kind": "run"}))
    assert main(["tsp", "report", str(folder / "other.json")]) == 2
    assert "not a part of a sharded evaluation" in capsys.readouterr().err


def test_solve_in_two_processes_writes_the_single_process_tours(setup):
    folder, path, common = setup
    assert main(["tsp", "solve", str(path), *common, "--out", str(folder / "single.txt")]) == 0
    proc = torchrun(["tsp", "solve", path, *common, "--out", folder / "launched.txt"])
    assert proc.returncode == 0, proc.stderr
    assert (folder / "launched.txt").read_text() == (folder / "single.txt").read_text()
    np.testing.assert_array_equal(read_instances(folder / "launched.txt").coords, read_instances(path).coords)
