"""Sharding is exact: `diffprior run` under torchrun (2 CPU processes, gloo) and as
`--shard I/N` parts joined by `diffprior merge` give the single-process output; a failed or
hung rank ends the launch with its rank named, in bounded time."""

import json
import re
from pathlib import Path

import pytest
from safetensors.torch import load_file

from diffprior.cli.main import main
from diffprior.runs.distributed import World
from diffprior.errors import UsageError
from diffprior.runs.sharding import Shard, batches_of, process_rows, shard_range
from diffprior.testing import torchrun

EXAMPLE = Path(__file__).parents[1] / "examples" / "gaussian.toml"
FAST = ["--set", "optimizer.steps=40", "--batch", "5", "--seed", "3", "--quiet"]


def _same_run(a: Path, b: Path, configs_differ: bool = False) -> None:
    """Same files, bit for bit, except the wall time in metrics.json (and the config, if told)."""
    assert load_file(str(a / "samples.safetensors")).keys() == load_file(str(b / "samples.safetensors")).keys()
    assert (a / "samples.safetensors").read_bytes() == (b / "samples.safetensors").read_bytes()
    assert (a / "samples.png").read_bytes() == (b / "samples.png").read_bytes()
    if not configs_differ:
        assert (a / "config.resolved.toml").read_text() == (b / "config.resolved.toml").read_text()
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    ma.pop("seconds"), mb.pop("seconds")
    assert ma == mb


def test_shards_are_contiguous_and_cover_everything():
    for total in (0, 1, 5, 7, 64):
        for count in (1, 2, 3, 5):
            parts = [shard_range(total, i, count) for i in range(count)]
            assert [i for r in parts for i in r] == list(range(total))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert Shard.parse("1/4") == Shard(1, 4) and str(Shard(1, 4)) == "1/4"
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            Shard.parse(bad)


def test_processes_take_the_whole_batches_one_process_would_run():
    for total, batch_size in ((5, 2), (7, 3), (64, 8), (9, 1)):
        one_process = batches_of(range(total), batch_size)
        assert [i for b in one_process for i in b] == list(range(total))
        for shards in (1, 2, 3):
            for size in (1, 2, 3):
                if -(-total // batch_size) < shards * size:
                    with pytest.raises(UsageError, match="too few for"):
                        process_rows(total, batch_size, Shard(0, shards), World(0, size))
                    continue
                batches = [b for i in range(shards) for r in range(size)
                           for b in batches_of(process_rows(total, batch_size, Shard(i, shards), World(r, size)),
                                               batch_size)]
                assert batches == one_process, (total, batch_size, shards, size)
    # without a batch size the samples themselves are split (a process's part is its one batch)
    assert [process_rows(5, None, Shard(1, 2), World(r, 2)) for r in range(2)] == [range(2, 3), range(3, 5)]
    assert batches_of(range(2, 5), None) == [range(2, 5)] and batches_of(range(0), 4) == []


def test_batches_of_one_run_equal_one_batch(tmp_path):
    """The Gaussian prior is batch-independent: batch_size changes nothing in the outputs."""
    whole, batched = tmp_path / "whole", tmp_path / "batched"
    assert main(["run", str(EXAMPLE), "--out", str(whole), *FAST]) == 0
    assert main(["run", str(EXAMPLE), "--out", str(batched), *FAST, "--batch-size", "2"]) == 0
    _same_run(whole, batched, configs_differ=True)
    assert (whole / "losses.png").read_bytes() == (batched / "losses.png").read_bytes()


def test_shards_merged_equal_the_whole_run(tmp_path, capsys):
    full, merged = tmp_path / "full", tmp_path / "merged"
    assert main(["run", str(EXAMPLE), "--out", str(full), *FAST]) == 0
    parts = [tmp_path / f"part{i}" for i in range(3)]
    for i, part in enumerate(parts):
        assert main(["run", str(EXAMPLE), "--out", str(part), "--shard", f"{i}/3", *FAST]) == 0
    assert load_file(str(parts[1] / "samples.safetensors"))["seeds"].tolist() == [4, 5]  # samples 1..2 of 0..4

    # a missing shard is named, with the command that makes only it
    capsys.readouterr()
    assert main(["merge", str(parts[0]), str(parts[2]), "--out", str(merged)]) == 2
    err = capsys.readouterr().err
    assert "missing shard(s) 1/3" in err and "--shard 1/3" in err and not merged.exists()

    assert main(["merge", *map(str, reversed(parts)), "--out", str(merged)]) == 0
    _same_run(full, merged)
    assert (full / "losses.png").read_bytes() == (merged / "losses.png").read_bytes()

    # parts of different runs do not merge
    other = tmp_path / "other"
    assert main(["run", str(EXAMPLE), "--out", str(other), "--shard", "1/3", *FAST, "--set", "optimizer.lr=0.02"]) == 0
    assert main(["merge", str(parts[0]), str(other), str(parts[2]), "--out", str(tmp_path / "mixed")]) == 2
    assert "another config" in capsys.readouterr().err


def test_more_shards_than_samples_is_a_clear_error(tmp_path, capsys):
    assert main(["run", str(EXAMPLE), "--out", str(tmp_path / "x"), "--shard", "0/9", *FAST]) == 2
    assert "5 sample(s) cannot fill 9 shards" in capsys.readouterr().err


def test_two_processes_write_the_single_process_run(tmp_path):
    single, launched = tmp_path / "single", tmp_path / "launched"
    assert main(["run", str(EXAMPLE), "--out", str(single), *FAST]) == 0
    proc = torchrun(["run", EXAMPLE, "--out", launched, *FAST])
    assert proc.returncode == 0, proc.stderr
    assert "5 sample(s) on 2 processes" in proc.stdout and proc.stdout.count("done:") == 1  # rank 0 reports
    _same_run(single, launched)


FAILING = """
import os, sys, time
from diffprior import distributed
world, _ = distributed.setup("cpu")
if world.rank == 1:
    if sys.argv[1] == "raise":
        sys.exit(__import__("diffprior.cli.main").cli.main.main(["run", "no-such-config.toml"]))
    time.sleep(600)  # "hang": never reach the collective
distributed.gather({}, {"rank": world.rank})
"""


LATE = """
import sys, time
from diffprior import distributed
if distributed.world_from_env().rank == 1:
    time.sleep(float(sys.argv[1]))  # a slow start: imports on a loaded machine, a slow file system
world, _ = distributed.setup("cpu")
pieces = distributed.gather({}, {"rank": world.rank})
assert [meta["rank"] for _, meta in pieces] == [0, 1]
if world.rank == 0:
    time.sleep(float(sys.argv[1]))  # rank 0 writes a checkpoint while the others wait for it
distributed.wait_for_others()
assert distributed.all_sum([1.0]) == [2.0]
if world.rank == 0:
    time.sleep(float(sys.argv[1]))  # rank 0 writes the outputs while the others wait to leave
distributed.shutdown(wait_for_others=True)
print(f"rank {world.rank} done")
"""


def test_ranks_wait_for_a_late_start_and_a_long_write_only_collectives_time_out(tmp_path):
    """DIFFPRIOR_DIST_TIMEOUT bounds collectives (a rank that died or hangs), not joining nor
    waiting for rank 0 to write: with a 1-s timeout, rank 1 starts 2 s after rank 0, and twice
    rank 0 writes for 2 s while rank 1 waits (mid-run and to leave); the launch succeeds."""
    script = tmp_path / "late.py"
    script.write_text(LATE)
    proc = torchrun(["2"], script=str(script), env={"DIFFPRIOR_DIST_TIMEOUT": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "rank 0 done" in proc.stdout and "rank 1 done" in proc.stdout


@pytest.mark.parametrize("mode", ["raise", "hang"])
def test_a_failed_or_hung_rank_ends_the_launch_naming_it(tmp_path, mode):
    script = tmp_path / "fail.py"
    script.write_text(FAILING)
    # bounded: the launch must end well before the hung rank's 600 s (torchrun raises TimeoutExpired
    # past 400 s); how long start-up takes depends on the machine's load, so it is not asserted
    proc = torchrun([mode], script=str(script), env={"DIFFPRIOR_DIST_TIMEOUT": "4"}, timeout=400)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    if mode == "raise":
        assert "error: rank 1/2: " in output and "no-such-config.toml" in output
        # torchrun's summary names a failed rank: rank 1 itself, or rank 0 if it noticed first
        assert re.search(r"rank\s*: [01] \(local_rank: [01]\)\s+exitcode\s*: [1-9]", output)
    else:  # rank 0 waited 4 s at the collective, then failed and was named
        assert re.search(r"rank\s*: 0 \(local_rank: 0\)", output) and "timed out" in output.lower()


def test_an_interrupted_batch_keeps_the_finished_ones_and_the_steps_all_did():
    import torch

    from diffprior import GaussianPrior, NoiseSchedule, Options, Pixels, optimize
    from diffprior.runs.sharding import concat_results

    prior = GaussianPrior(torch.zeros(3), torch.ones(3), NoiseSchedule.linear(100))
    options = Options(optimizer={"steps": 6, "lr": 0.1})
    finished = optimize(prior, Pixels(prior), [], [0, 1], options)

    def ctrl_c_at_step_2(state):
        if state.step == 2:
            raise KeyboardInterrupt

    cut = optimize(prior, Pixels(prior), [], [2], options, callbacks=[ctrl_c_at_step_2])
    assert cut.interrupted and cut.steps_done == 2 and cut.losses["prior"].shape == (3, 1)  # step 2 was logged
    joined = concat_results([finished, cut])
    assert joined.seeds == [0, 1, 2] and joined.interrupted and joined.steps_done == 2
    assert joined.losses["prior"].shape == (3, 3) and joined.timesteps.shape == (3, 3)
    assert torch.equal(joined.losses["prior"][:, :2], finished.losses["prior"][:3])
    assert torch.equal(joined.x[:2], finished.x)  # the finished batch keeps its final samples
