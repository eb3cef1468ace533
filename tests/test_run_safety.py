"""Results are never lost and never destroyed: fresh run directories, atomic files, the
manifest last, locks, a held second Ctrl-C, quiet closed pipes."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from diffprior.cli.main import main
from diffprior.runs.directories import RunDir

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "gaussian.toml"
FAST = ["--quiet", "--set", "optimizer.steps=5", "--batch", "2"]
# a huge learning rate: the loss is not finite at step 0 or 1
EXPLODE = ["--set", "optimizer.type='sgd'", "--set", "optimizer.lr=1e30", "--set", "terms.0.noise=1e-20"]


def snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_a_second_run_goes_to_a_fresh_directory_and_says_so(tmp_path, capsys):
    out = tmp_path / "digits"
    assert main(["run", str(EXAMPLE), "--out", str(out), *FAST]) == 0
    first = snapshot(out)
    assert "manifest.json" in first and ".lock" not in first
    manifest = json.loads(first["manifest.json"])
    assert manifest["complete"] and manifest["status"] == "done"
    assert set(manifest["files"]) == {"samples.safetensors", "samples.png", "metrics.json", "config.resolved.toml",
                                      "losses.png", "schedules.png"}
    capsys.readouterr()
    assert main(["run", str(EXAMPLE), "--out", str(out), *FAST, "--seed", "9"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == f"run directory: {out}-1/"  # said at the start
    assert snapshot(out) == first  # the earlier run is untouched
    assert (tmp_path / "digits-1" / "manifest.json").exists()


def test_a_failed_run_never_replaces_a_good_one(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(EXAMPLE), "--out", str(out), *FAST]) == 0
    good = snapshot(out)
    assert main(["run", str(EXAMPLE), "--out", str(out), *FAST, *EXPLODE]) == 1
    assert "not finite" in capsys.readouterr().err
    assert snapshot(out) == good
    failed = tmp_path / "run-1"
    manifest = json.loads((failed / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    if manifest["steps_done"] == 0:
        assert not (failed / "losses.png").exists()


def test_overwrite_replaces_every_file_of_the_earlier_run(tmp_path):
    out = tmp_path / "run"
    assert main(["run", str(EXAMPLE), "--out", str(out), *FAST]) == 0
    (out / "notes.txt").write_text("mine")  # not a run file: kept
    assert main(["run", str(EXAMPLE), "--out", str(out), *FAST, *EXPLODE, "--overwrite"]) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and set(manifest["files"]) == set(os.listdir(out)) - {"manifest.json",
                                                                                               "notes.txt"}
    # no losses.png of the earlier run mixed in with a 0-step failure
    assert (out / "losses.png").exists() == (manifest["steps_done"] > 0)
    assert not (tmp_path / "run-1").exists()


def test_an_out_that_is_a_file_is_an_input_error(tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    assert main(["run", str(EXAMPLE), "--out", str(target), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: --out {target} is a file, not a directory; give a directory"
    assert target.read_text() == "keep me"


def test_an_unwritable_out_fails_before_the_optimisation(tmp_path, capsys, monkeypatch):
    import diffprior.runs.runner

    def never(*args, **kwargs):
        raise AssertionError("the optimisation started")

    monkeypatch.setattr(diffprior.runs.runner, "build", never)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", str(EXAMPLE), "--out", str(blocker / "sub"), *FAST]) == 2
    assert "cannot create the output directory" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere: the permission case needs a normal user
        locked = tmp_path / "read-only"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            assert main(["run", str(EXAMPLE), "--out", str(locked), *FAST]) == 2
            assert "permission denied" in capsys.readouterr().err
        finally:
            locked.chmod(0o755)


def test_a_directory_another_run_writes_to_is_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "samples.png").write_bytes(b"an earlier run")
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242")
    fcntl.flock(fd, fcntl.LOCK_EX)  # what a running diffprior holds
    try:
        assert main(["run", str(EXAMPLE), "--out", str(out), *FAST, "--overwrite"]) == 2
        assert "another diffprior run (pid 4242) is writing to" in capsys.readouterr().err
        assert (out / "samples.png").read_bytes() == b"an earlier run"
    finally:
        os.close(fd)


def test_two_runs_claiming_one_name_get_two_directories(tmp_path):
    with RunDir.claim(tmp_path / "same") as first, RunDir.claim(tmp_path / "same") as second:
        assert first.path.name == "same" and second.path.name == "same-1"
        first.write_text("a.txt", "1")
        second.write_text("a.txt", "2")
    assert (tmp_path / "same" / "a.txt").read_text() == "1" and (tmp_path / "same-1" / "a.txt").read_text() == "2"


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    with RunDir.claim(tmp_path / "atomic") as run_dir:
        run_dir.write_text("metrics.json", "old")

        def half_then_fail(path):
            path.write_text("half")
            raise OSError("disk full")

        with pytest.raises(OSError):
            run_dir.write("metrics.json", half_then_fail)
        assert sorted(os.listdir(run_dir.path)) == [".lock", "metrics.json"]  # no temporary left
        assert (run_dir.path / "metrics.json").read_text() == "old"


def test_a_second_ctrl_c_while_writing_keeps_a_complete_directory(tmp_path, capsys, monkeypatch):
    import diffprior.method.optimizer
    import diffprior.runs.outputs

    calls = {"n": 0}
    energy = diffprior.method.optimizer.FreeEnergy.__call__

    def interrupted_at_step_3(self, *args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the first Ctrl-C, during the optimisation
        return energy(self, *args)

    grid = diffprior.runs.outputs.save_grid

    def ctrl_c_while_writing(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # the second Ctrl-C, while the results are written
        return grid(*args, **kwargs)

    monkeypatch.setattr(diffprior.method.optimizer.FreeEnergy, "__call__", interrupted_at_step_3)
    monkeypatch.setattr(diffprior.runs.outputs, "save_grid", ctrl_c_while_writing)
    out = tmp_path / "run"
    assert main(["run", str(EXAMPLE), "--out", str(out), *FAST]) == 130
    err = capsys.readouterr().err
    assert "still writing the results" in err and f"kept {out}/ complete (3 steps)" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["steps_done"] == 3
    assert {"samples.safetensors", "samples.png", "metrics.json", "losses.png"} <= set(manifest["files"])


@pytest.mark.parametrize("args", [["plugins", "--json"], ["schema"], ["--help"]])
def test_a_closed_pipe_ends_quietly(args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before diffprior writes (what `| head -1` leads to)
    try:
        proc = subprocess.run([sys.executable, "-m", "diffprior.cli", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode in (0, 141), proc.stderr  # argparse itself ignores the pipe
