"""A config that names a type of a plugin that failed to import says so: the error names the
distribution and its import error, not only "unknown term type"."""

from __future__ import annotations

import pytest

from diffprior.testing import PluginSandbox

BROKEN = "import diffprior_no_such_dependency  # not installed: the import fails\n"
CONFIG = '[prior]\ntype = "gaussian"\nshape = [1, 8, 8]\n\n[[terms]]\ntype = "match"\n\n[[terms]]\ntype = "{term}"\n'


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> PluginSandbox:
    box = PluginSandbox(tmp_path_factory.mktemp("failed-import"))
    # named as `diffprior new-plugin total-variation` names it: entry point = the term's type
    box.add_distribution("diffprior-total-variation", {"diffprior_total_variation/__init__.py": BROKEN},
                         {"total-variation": "diffprior_total_variation"})
    # entry point and distribution named otherwise: which type it provides cannot be told
    box.add_distribution("diffprior-smoothers", {"diffprior_smoothers/__init__.py": BROKEN},
                         {"plugin": "diffprior_smoothers"})
    return box


def _validate(box, tmp_path, term, only):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.format(term=term))
    return box.cli("validate", str(config), env=box.env(DIFFPRIOR_PLUGINS=only))


def test_the_error_names_the_distribution_that_provides_the_type_and_its_import_error(sandbox, tmp_path):
    done = _validate(sandbox, tmp_path, "total-variation", "diffprior-total-variation,diffprior-smoothers")
    assert done.returncode == 2
    error = [line for line in done.stderr.splitlines() if line.startswith("error") or "terms[1].type" in line]
    text = "\n".join(error)
    assert "unknown term type 'total-variation'" in text
    assert ("'total-variation' is probably provided by the plugin 'diffprior-total-variation', which failed to "
            "import: ModuleNotFoundError: No module named 'diffprior_no_such_dependency'") in text
    assert "diffprior-smoothers" not in text  # the likely provider alone, not every failed plugin


def test_without_a_likely_provider_every_failed_plugin_is_named(sandbox, tmp_path):
    done = _validate(sandbox, tmp_path, "smooth", "diffprior-total-variation,diffprior-smoothers")
    assert done.returncode == 2
    assert "plugins that failed to import (one may provide it): 'diffprior-smoothers': ModuleNotFoundError" in done.stderr
    assert "'diffprior-total-variation': ModuleNotFoundError" in done.stderr


def test_without_failed_plugins_the_message_is_unchanged(sandbox, tmp_path):
    done = _validate(sandbox, tmp_path, "total-variation", "diffprior-edges")
    assert done.returncode == 2
    assert "unknown term type 'total-variation'" in done.stderr and "failed to import" not in done.stderr
