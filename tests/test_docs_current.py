"""docs/config-types.md is generated from the installed plugins: it must match the code."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_config_types_reference_is_current():
    from diffprior.plugins import get_registry

    expected = {"diffprior", "diffprior-unet", "diffprior-images", "diffprior-tsp", "diffprior-edges"}
    if not expected <= set(get_registry().plugins):
        pytest.skip("the reference covers every plugin of the repository; install them all (scripts/install.sh)")
    generated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_reference.py")], capture_output=True, text=True, check=True
    ).stdout
    current = (ROOT / "docs" / "config-types.md").read_text()
    assert generated == current, "docs/config-types.md is stale: python scripts/config_reference.py > docs/config-types.md"
