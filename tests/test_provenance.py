"""A run records what made it: every term's effective weight and clip (so its resolved config
reproduces it after a plugin changes its defaults), the distributions and versions of the types
it used, and the versions, device and command line; `explain` shows the composed run and draws
its schedules; `run --from` re-runs a finished run and names every version that changed."""

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import ClassVar, Literal

import pytest
import torch
from safetensors.torch import load_file

from diffprior import Term, TermConfig, hookimpl, load_config, register_plugin, run, unregister_plugin

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
batch = 3
seed = 5
[prior]
type = "gaussian"
shape = [1, 4, 4]
[optimizer]
steps = 12
lr = 0.1
[[terms]]
type = "pull"
"""


class Pull(Term):
    def log_c(self, x):
        return -(x - 0.5).pow(2).flatten(1).sum(1)


def _pull_plugin(weight_default: float) -> types.SimpleNamespace:
    """Version N of a term plugin: only the term's default weight changes."""

    class PullConfig(TermConfig):
        type: Literal["pull"] = "pull"
        default_weight: ClassVar = weight_default
        default_clip: ClassVar = {"max_norm": 3.0}

        def build(self, ctx):
            return Pull(self, ctx)

    module = types.SimpleNamespace()

    @hookimpl
    def register_terms(register):
        register(PullConfig)

    module.register_terms = register_terms
    return module


@pytest.fixture
def pull_version():
    def install(default_weight):
        unregister_plugin("pull-terms")
        register_plugin(_pull_plugin(default_weight), "pull-terms")

    yield install
    unregister_plugin("pull-terms")


def _samples(run_dir: Path) -> torch.Tensor:
    return load_file(run_dir / "samples.safetensors")["x"]


def test_the_resolved_config_reproduces_a_run_after_the_plugin_changes_its_defaults(tmp_path, pull_version):
    (tmp_path / "run.toml").write_text(CONFIG)
    pull_version(0.5)
    first = run(load_config(tmp_path / "run.toml"), tmp_path / "first", progress=False).out_dir
    resolved = (first / "config.resolved.toml").read_text()
    assert "max_norm" in resolved  # the default clip is written out, not left implicit

    pull_version(4.0)  # the plugin's next version pulls harder by default
    again = run(load_config(first / "config.resolved.toml"), tmp_path / "again", progress=False).out_dir
    assert torch.equal(_samples(again), _samples(first))
    changed = run(load_config(tmp_path / "run.toml"), tmp_path / "changed", progress=False).out_dir
    assert not torch.allclose(_samples(changed), _samples(first))  # the default did matter


def test_the_manifest_records_where_each_value_and_type_came_from(tmp_path, pull_version):
    (tmp_path / "run.toml").write_text(CONFIG + 'weight = 0.25\n')
    pull_version(0.5)
    out = run(load_config(tmp_path / "run.toml"), tmp_path / "run", progress=False).out_dir
    made = json.loads((out / "manifest.json").read_text())["provenance"]
    assert made["types"]["pull"] == {"kind": "term", "type": "pull", "distribution": "pull-terms", "version": None}
    assert made["types"]["prior"]["distribution"] == "diffprior"
    assert made["term_values"]["pull"] == {"weight": "config", "clip": "default of pull (pull-terms None)"}
    assert made["python"] == ".".join(map(str, sys.version_info[:3]))
    assert made["device"] == "cpu" and made["threads"] == torch.get_num_threads()


def test_a_digits_run_names_the_unet_distribution_and_torch(tmp_path):
    from importlib.metadata import version

    subprocess.run([sys.executable, "-m", "diffprior.cli.main", "run", str(ROOT / "examples" / "digits.toml"),
                    "--set", "optimizer.steps=2", "--batch", "1", "--out", str(tmp_path / "digits"), "--quiet"],
                   check=True, capture_output=True, cwd=tmp_path)
    made = json.loads((tmp_path / "digits" / "manifest.json").read_text())["provenance"]
    assert made["types"]["prior"] == {"kind": "prior", "type": "unet", "distribution": "diffprior-unet",
                                      "version": version("diffprior-unet")}
    assert made["torch"] == version("torch")
    assert made["command"][1:3] == ["run", str(ROOT / "examples" / "digits.toml")]


def test_explain_shows_a_default_the_config_did_not_set_and_draws_every_schedule(tmp_path, pull_version, capsys):
    from diffprior.cli.main import main
    from diffprior.config.explain import plot_schedules, schedule_values

    (tmp_path / "run.toml").write_text(CONFIG.replace("lr = 0.1", 'lr = {linear = [0.1, 0.01]}'))
    pull_version(0.5)
    assert main(["explain", str(tmp_path / "run.toml"), "--plot", str(tmp_path / "schedules.png")]) == 0
    printed = capsys.readouterr().out
    assert "weight 0.5" in printed and "[default of pull (pull-terms None)]" in printed
    assert "max_norm 3" in printed
    assert (tmp_path / "schedules.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    config = load_config(tmp_path / "run.toml")
    figure = plot_schedules(config, tmp_path / "again.png")
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["timestep t", "learning rate", "prior weight", "weight: pull"]
    lr = figure.axes[1].lines[0].get_ydata()
    assert list(lr) == pytest.approx(schedule_values(config.optimizer.lr, 12)) and lr[0] == pytest.approx(0.1)
    assert list(figure.axes[3].lines[0].get_ydata()) == pytest.approx([0.5] * 12)


def test_run_from_a_run_directory_repeats_it_and_names_a_changed_version(tmp_path, pull_version):
    first = tmp_path / "first"
    subprocess.run([sys.executable, "-m", "diffprior.cli.main", "run", str(ROOT / "examples" / "digits.toml"),
                    "--set", "optimizer.steps=2", "--batch", "2", "--out", str(first), "--quiet"],
                   check=True, capture_output=True)
    manifest = json.loads((first / "manifest.json").read_text())
    manifest["provenance"]["types"]["prior"]["version"] = "0.0.1"  # as if made by an older diffprior-unet
    (first / "manifest.json").write_text(json.dumps(manifest))
    again = subprocess.run([sys.executable, "-m", "diffprior.cli.main", "run", "--from", str(first), "--quiet"],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert "prior type 'unet' came from diffprior-unet 0.0.1; now from diffprior-unet" in again.stderr
    assert torch.equal(_samples(tmp_path / "first-rerun"), _samples(first))

    missing = subprocess.run([sys.executable, "-m", "diffprior.cli.main", "run", "--from", str(tmp_path)],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "not a finished run directory" in missing.stderr
