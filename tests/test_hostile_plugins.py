"""Plugins written to take what is not theirs, or to bring diffprior down, do neither.

Each hostile plugin is a real installed distribution (files, METADATA, entry_points.txt)
in a sandbox on PYTHONPATH; the CLI runs in a subprocess with its own plugin index
(DIFFPRIOR_CACHE_DIR inside the sandbox). DIFFPRIOR_PLUGINS picks the distributions under
test, so the result does not depend on what else is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diffprior.testing import PluginSandbox

ROOT = Path(__file__).resolve().parents[1]
GAUSSIAN = ROOT / "examples" / "gaussian.toml"

TAKEOVER = """
from typing import ClassVar, Literal
from diffprior import Command
from diffprior.config.bases import TermConfig
from diffprior.plugins.hooks import hookimpl

class Match(TermConfig):
    type: Literal["match"] = "match"

def _run(args):
    print("HIJACKED")
    return 0

@hookimpl({order})
def register_commands(register):
    register(Command("run", "not the real run", lambda p: p.add_argument("rest", nargs="*"), _run))

@hookimpl({order})
def register_terms(register):
    register(Match)
"""

SHARED = """
from typing import ClassVar, Literal
from diffprior.config.bases import TermConfig
from diffprior.plugins.hooks import hookimpl

class Shared(TermConfig):
    type: Literal["shared"] = "shared"
    level: float = {level}
    noise: float = 0.5

    def build(self, ctx):
        import torch
        from diffprior.method.terms import MaskedGaussian
        return MaskedGaussian(self, ctx, torch.full(ctx.prior.shape, self.level), torch.ones(ctx.prior.shape))

@hookimpl
def register_terms(register):
    register(Shared)
"""

FIRST_PARTY_NAME = """
from typing import Literal
from diffprior.config.bases import PriorConfig
from diffprior.plugins.hooks import hookimpl

class FakeUnet(PriorConfig):
    type: Literal["unet"] = "unet"

@hookimpl
def register_priors(register):
    register(FakeUnet)
"""

# each import of the slow and the hanging plugin is written down: whether a command imported them
# is read from this log, not from wall-clock time (noisy on a shared machine)
IMPORT_LOG = "import os, time\nopen(os.environ['DIFFPRIOR_TEST_IMPORT_LOG'], 'a').write('{name}\\n')\n"

IMPORT_TIME = {  # distribution -> (module code, what `diffprior plugins` must say about it)
    "diffprior-exits": ("import sys\nsys.exit(3)\n", "called sys.exit(3)"),
    "diffprior-interrupts": ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    "diffprior-base-exception": ("class Boom(BaseException):\n    pass\nraise Boom('not an Exception')\n",
                                 "Boom: not an Exception"),
    "diffprior-hard-exit": ("import os\nos._exit(7)\n", "ended the process while being imported (exit code 7)"),
    "diffprior-hangs": (IMPORT_LOG.format(name="hangs") + "time.sleep(120)\n", "took longer than 3 s"),
}
SLOW = ("diffprior-slow", IMPORT_LOG.format(name="slow") + "time.sleep(1.5)\n")


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> PluginSandbox:
    sandbox = PluginSandbox(tmp_path_factory.mktemp("hostile"))
    for order in ("trylast", "tryfirst"):
        module = f"takeover_{order}"
        sandbox.add_distribution(f"diffprior-takeover-{order}",
                                 {f"{module}.py": TAKEOVER.format(order=f"{order}=True")}, {"plugin": module})
    for dist, level in (("diffprior-shared-one", 0.3), ("diffprior-shared-two", -0.3)):
        module = dist.replace("-", "_")
        sandbox.add_distribution(dist, {f"{module}.py": SHARED.format(level=level)}, {"plugin": module})
    sandbox.add_distribution("diffprior-fake-unet", {"fake_unet.py": FIRST_PARTY_NAME}, {"plugin": "fake_unet"})
    for dist, (code, _) in [*IMPORT_TIME.items(), (SLOW[0], (SLOW[1], None))]:
        module = dist.replace("-", "_")
        sandbox.add_distribution(dist, {f"{module}.py": code}, {"plugin": module})
    return sandbox


def env(box, *dists, **extra):
    extra.setdefault("DIFFPRIOR_TEST_IMPORT_LOG", str(box.root / "imports.log"))
    return box.env(DIFFPRIOR_PLUGINS=",".join(dists), DIFFPRIOR_PLUGIN_TIMEOUT="3", **extra)


def imports_during(box, fn) -> list[str]:
    """Which logged plugins ``fn()`` imported."""
    log = box.root / "imports.log"
    before = log.read_text().splitlines() if log.exists() else []
    fn()
    after = log.read_text().splitlines() if log.exists() else []
    return after[len(before):]


def warnings_of(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if line.startswith("warning: plugin"))


# ------------------------------------------------------------------ names that are not theirs
@pytest.mark.parametrize("order", ["trylast", "tryfirst"])
def test_core_names_are_reserved_whatever_the_hook_order(box, tmp_path, order):
    dist = f"diffprior-takeover-{order}"
    proc = box.cli("plugins", "--json", env=env(box, dist))
    assert proc.returncode == 0, proc.stderr
    listing = {p["distribution"]: p for p in json.loads(proc.stdout)}
    assert listing["diffprior"]["loaded"], listing["diffprior"]  # the core is never the one marked failed
    assert "run" in listing["diffprior"]["registers"]["command"]
    assert listing[dist]["registers"] == {}
    assert "reserved by the core" in " ".join(listing[dist]["errors"])

    proc = box.cli("run", "--help", env=env(box, dist))  # the core's run, with its own options
    assert proc.returncode == 0, proc.stderr
    assert "--overwrite" in proc.stdout and "not the real run" not in proc.stdout
    assert "'run' is reserved by the core" in warnings_of(proc.stderr)
    proc = box.cli("validate", str(GAUSSIAN), env=env(box, dist))  # and the core's match term
    assert proc.returncode == 0 and "HIJACKED" not in proc.stdout, proc.stderr


def test_first_party_names_are_reserved_against_third_parties(box):
    proc = box.cli("plugins", env=env(box, "diffprior-unet", "diffprior-fake-unet"))
    assert proc.returncode == 0, proc.stderr
    assert "prior 'unet' is reserved by the first-party distribution 'diffprior-unet'" in proc.stdout
    assert "diffprior-unet" in proc.stdout and "(first-party, ok)" in proc.stdout


def test_two_third_parties_with_one_name_neither_wins(box, tmp_path):
    both = ("diffprior-shared-one", "diffprior-shared-two")
    proc = box.cli("plugins", env=env(box, *both))
    assert proc.returncode == 0, proc.stderr
    warned = warnings_of(proc.stderr)
    assert "term 'shared' is registered by 'diffprior-shared-one', 'diffprior-shared-two'" in warned
    for dist in both:  # both named in the listing, each under its qualified name
        assert f"{dist}:shared" in proc.stdout

    cfg = tmp_path / "shared.toml"
    cfg.write_text('[prior]\ntype = "gaussian"\nshape = [1, 4, 4]\n\n[[terms]]\ntype = "shared"\n\n'
                   '[optimizer]\nsteps = 30\nlr = 0.05\n')
    proc = box.cli("validate", str(cfg), env=env(box, *both))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "type = 'diffprior-shared-one:shared' or type = 'diffprior-shared-two:shared'" in proc.stderr

    # a config picks one explicitly; the resolved config keeps the choice
    cfg.write_text(cfg.read_text().replace('type = "shared"', 'type = "diffprior-shared-two:shared"'))
    out = tmp_path / "out"
    proc = box.cli("run", str(cfg), "--out", str(out), "--quiet", env=env(box, *both))
    assert proc.returncode == 0, proc.stderr
    assert 'type = "diffprior-shared-two:shared"' in (out / "config.resolved.toml").read_text()
    metrics = json.loads((out / "metrics.json").read_text())["metrics_mean"]
    assert "shared.log_c" in metrics or "diffprior-shared-two:shared.log_c" in metrics


# ------------------------------------------------------------------ plugins that bring the process down
def test_help_version_and_plugins_survive_every_hostile_import(box, tmp_path):
    every = [*IMPORT_TIME, SLOW[0]]
    e = env(box, *every)
    for args in (["--help"], ["--version"], []):
        procs = []
        assert imports_during(box, lambda: procs.append(box.cli(*args, env=e))) == [], args  # no plugin imported
        assert procs[0].returncode == 0, (args, procs[0].stderr)
    assert "diffprior 0.1.0" in box.cli("--version", env=e).stdout

    procs = []
    assert "slow" in imports_during(box, lambda: procs.append(box.cli("plugins", env=e)))  # the log does see imports
    proc = procs[0]
    assert proc.returncode == 0, proc.stderr
    for dist, (_, reason) in IMPORT_TIME.items():
        block = proc.stdout.split(dist, 1)[1].split("\ndiffprior", 1)[0]
        assert "FAILED" in block and reason in block, (dist, proc.stdout)
    slow_line = next(line for line in proc.stdout.splitlines() if line.startswith(SLOW[0]))
    assert "ok" in slow_line and "import took" in slow_line

    # once indexed, the hanging and process-ending plugins are not imported again: commands work at once
    procs = []
    assert "hangs" not in imports_during(box, lambda: procs.append(box.cli("validate", str(GAUSSIAN), env=e)))
    proc = procs[0]
    assert proc.returncode == 0, proc.stderr
    assert "diffprior-hangs" in warnings_of(proc.stderr) and "took longer than 3 s" in proc.stderr


def test_help_lists_plugin_commands_from_the_index_without_importing_them(box):
    e = env(box, "diffprior-slow")
    box.cli("plugins", env=e)  # indexes it
    procs = []
    assert imports_during(box, lambda: procs.append(box.cli("--help", env=e))) == []  # the slow import did not run
    assert procs[0].returncode == 0


# ------------------------------------------------------------------ --disable-plugin says what it did
def test_disable_plugin_of_an_unknown_name_or_the_core_is_an_error(box):
    proc = box.cli("--disable-plugin", "diffprior-shared-on", "plugins", env=env(box))
    assert proc.returncode == 2
    assert "no plugin distribution of that name is installed (did you mean 'diffprior-shared-one'?)" in proc.stderr
    proc = box.cli("--disable-plugin", "diffprior", "plugins", env=env(box))
    assert proc.returncode == 2 and "the core cannot be disabled" in proc.stderr


def test_an_unknown_type_of_a_disabled_plugin_says_it_is_disabled(box, tmp_path):
    e = env(box, "diffprior-shared-one")
    assert box.cli("plugins", env=e).returncode == 0  # indexed while enabled
    cfg = tmp_path / "one.toml"
    cfg.write_text('[prior]\ntype = "gaussian"\nshape = [2]\n\n[[terms]]\ntype = "shared"\n')
    proc = box.cli("--disable-plugin", "diffprior-shared-one", "validate", str(cfg), env=e)
    assert proc.returncode == 2
    hint = proc.stderr.split("'shared' comes from", 1)[1]  # the plugin disabled on purpose is named first
    assert "disabled" in hint and hint.split("'")[1] == "diffprior-shared-one", proc.stderr
