"""docs/config-types.md is generated from the installed plugins: it must match the code."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_config_types_reference_is_current():
    from diffprior.plugins.registry import get_registry

    expected = {"diffprior", "diffprior-unet", "diffprior-images", "diffprior-tsp", "diffprior-landcover", "diffprior-diffusers", "diffprior-edges"}
    if not expected <= set(get_registry().plugins):
        pytest.skip("the reference covers every plugin of the repository; install them all (scripts/install.sh)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIFFPRIOR_")}
    generated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_reference.py")], capture_output=True, text=True, check=True,
        env=env,
    ).stdout
    current = (ROOT / "docs" / "config-types.md").read_text()
    assert generated == current, "docs/config-types.md is stale: python scripts/config_reference.py > docs/config-types.md"


def test_the_reference_ignores_a_third_party_plugin_installed_next_to_the_repository(tmp_path):
    from diffprior.plugins.registry import get_registry
    from diffprior.testing import PluginSandbox

    repository = {line.split("=", 1)[1].strip().strip('"')
                  for pyproject in [*ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("contrib/*/pyproject.toml")]
                  for line in pyproject.read_text().splitlines() if line.startswith("name = ")}
    if not repository <= set(get_registry().plugins):
        pytest.skip("the reference covers every plugin of the repository; install them all (scripts/install.sh)")
    box = PluginSandbox(tmp_path)
    box.add_distribution("diffprior-someone-elses", {"someone_elses.py": """
        from typing import Literal
        from diffprior.config.bases import TermConfig
        from diffprior.plugins.hooks import hookimpl

        class Theirs(TermConfig):
            type: Literal["theirs"] = "theirs"

        @hookimpl
        def register_terms(register):
            register(Theirs)
    """}, {"plugin": "someone_elses"})
    assert "theirs" in box.cli("plugins", env=box.env()).stdout  # installed and loaded
    generated = box.python(str(ROOT / "scripts" / "config_reference.py"), env=box.env())
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout == (ROOT / "docs" / "config-types.md").read_text()


def test_the_scaffold_prints_commands_that_work_without_an_activated_venv(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "diffprior.cli", "new-plugin", "tidy", "--dir", str(tmp_path / "p")],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PATH": "/usr/bin:/bin", "VIRTUAL_ENV": ""})
    assert proc.returncode == 0, proc.stderr
    steps = proc.stdout.split("next:\n", 1)[1].splitlines()
    for step in steps:
        program = step.split()[0]
        assert os.path.isabs(program) and os.access(program, os.X_OK), step
