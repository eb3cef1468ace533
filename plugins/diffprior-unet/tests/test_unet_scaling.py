"""`diffprior run` with a U-Net prior under torchrun (2 CPU processes) and as --shard parts:
the single-process samples bit for bit, because every process takes whole batches of
`batch_size` (a convolution on CPU gives other last bits for another batch size)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from diffprior import NoiseSchedule
from diffprior.cli.main import main
from diffprior.testing import torchrun
from diffprior_unet.checkpoints import save_checkpoint
from diffprior_unet.config import UNetArchitecture
from diffprior_unet.model import UNet

from unet_tiny_arch import TINY

# 5 samples in batches of 2: [0, 1] [2, 3] [4]. On 2 ranks, rank 0 runs the first batch and
# rank 1 the other two, one after the other; a shard of 2 takes batches the same way.
FAST = ["--batch", "5", "--batch-size", "2", "--seed", "11", "--quiet"]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """A run config on a tiny U-Net whose output layer is not zero (a fresh U-Net predicts
    ε = 0 whatever the batch), with the full gradient through it, a term and a DDIM clean-up."""
    folder = tmp_path_factory.mktemp("unet-scaling")
    torch.manual_seed(0)
    net = UNet(UNetArchitecture(**TINY))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(net, folder / "tiny", noise=NoiseSchedule.linear(100), dtype="float32")
    path = folder / "tiny-run.toml"
    path.write_text('gradient = "full"\n\n[prior]\ntype = "unet"\ncheckpoint = "tiny.safetensors"\n\n'
                    '[variable]\ntype = "pixels"\n\n[[terms]]\ntype = "match"\ntarget = 0.5\nnoise = 0.5\n\n'
                    '[optimizer]\nsteps = 4\nlr = 0.05\n\n[timesteps]\ntype = "linear"\nstart = 90\nend = 10\n\n'
                    '[denoise]\nfrom_t = 10\nsteps = 2\nmethod = "ddim"\n')
    return path


def _assert_same_run(expected, got):
    a, b = load_file(str(expected / "samples.safetensors")), load_file(str(got / "samples.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs: max {float((a[key] - b[key]).abs().max()):.3g}"
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (expected, got))
    ma.pop("seconds"), mb.pop("seconds")
    assert ma == mb
    assert (expected / "samples.png").read_bytes() == (got / "samples.png").read_bytes()


def test_two_processes_and_merged_shards_give_the_single_process_samples(config, tmp_path, capsys):
    single = tmp_path / "single"
    assert main(["run", str(config), "--out", str(single), *FAST]) == 0
    assert json.loads((single / "metrics.json").read_text())["seeds"] == [11, 12, 13, 14, 15]

    launched = tmp_path / "launched"
    proc = torchrun(["run", config, "--out", launched, *FAST])
    assert proc.returncode == 0, proc.stderr
    assert "5 sample(s) on 2 processes" in proc.stdout
    _assert_same_run(single, launched)

    parts = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(parts):
        assert main(["run", str(config), "--out", str(part), "--shard", f"{i}/2", *FAST]) == 0
    assert json.loads((parts[1] / "shard.json").read_text())["rows"] == [2, 5]  # batches [2, 3] and [4]
    merged = tmp_path / "merged"
    assert main(["merge", *map(str, parts), "--out", str(merged)]) == 0
    _assert_same_run(single, merged)


def test_too_few_batches_for_the_shards_is_a_clear_error(config, tmp_path, capsys):
    assert main(["run", str(config), "--out", str(tmp_path / "x"), "--shard", "0/4", *FAST]) == 2
    err = capsys.readouterr().err
    assert "5 sample(s) make 3 batch(es) of batch_size (--batch-size) 2, too few for 4 shard(s)" in err
    assert "lower batch_size (--batch-size) to at most 1" in err and not (tmp_path / "x").exists()
