"""``diffprior check-plugin DIST``: the conformance kit as a command, against installed distributions."""

from __future__ import annotations

import re

import pytest

from diffprior.cli.main import main
from diffprior.testing import PluginSandbox

# a term whose score of each sample is shifted by the batch's mean: row i depends on the other rows
BATCH_MIXER = """
from typing import ClassVar, Literal
from diffprior.config.bases import TermConfig
from diffprior.plugins.hooks import hookimpl

class BatchMeanConfig(TermConfig):
    type: Literal["batch-mean"] = "batch-mean"
    default_weight: ClassVar = 1.0
    default_clip: ClassVar = "none"

    def build(self, ctx):
        from diffprior import Term

        class BatchMean(Term):
            def log_c(self, x):
                per_sample = -(x.flatten(1) ** 2).mean(1)
                return per_sample - 0.5 * per_sample.mean()  # mixes samples

        return BatchMean(self, ctx)

@hookimpl
def register_terms(register):
    register(BatchMeanConfig)
"""


def _rows(text: str) -> dict[tuple[str, str], str]:
    rows = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 3:
            rows[(cells[0], cells[1])] = cells[2]
    return rows


def test_the_contrib_distribution_passes_every_check(capsys):
    assert main(["check-plugin", "diffprior-edges"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows[("loads strictly", "-")] == "ok"
    assert rows[("light hook import", "diffprior_edges.plugin")] == "ok"
    for term in ("tv", "edges"):
        for check in ("config", "build", "scores", "gradient", "metrics", "per-sample independence"):
            assert rows[(check, term)] == "ok"
    assert "every check passed" in out


def test_a_term_that_mixes_samples_fails_and_the_check_is_named(tmp_path):
    box = PluginSandbox(tmp_path)
    box.add_distribution("diffprior-mixer", {"diffprior_mixer.py": BATCH_MIXER}, {"batch-mean": "diffprior_mixer"})
    done = box.cli("check-plugin", "diffprior-mixer", env=box.env(DIFFPRIOR_PLUGINS="diffprior-mixer"))
    assert done.returncode == 1, done.stdout + done.stderr
    rows = _rows(done.stdout)
    assert rows[("loads strictly", "-")] == "ok" and rows[("scores", "batch-mean")] == "ok"
    assert rows[("per-sample independence", "batch-mean")] == "FAILED"
    assert "per-sample independence (batch-mean): BatchMeanConfig: log_c of sample 0 alone" in done.stdout
    assert "1 check(s) failed" in done.stdout


def test_a_type_given_bad_params_fails_its_config_check(capsys):
    assert main(["check-plugin", "diffprior-edges", "--params", 'tv={"epsilon": -1}']) == 1
    out = capsys.readouterr().out
    assert _rows(out)[("config", "tv")] == "FAILED" and _rows(out)[("config", "edges")] == "ok"
    assert "TotalVariationConfig does not accept params {'epsilon': -1}" in out


@pytest.mark.parametrize("argv, message", [
    (["diffprior-edgs"], "no installed plugin distribution 'diffprior-edgs' (did you mean 'diffprior-edges'?)"),
    (["diffprior-edges", "--params", "tv=[1]"], "must be a JSON object"),
    (["diffprior-edges", "--params", "blur={}"], "--params names blur, which diffprior-edges does not register"),
])
def test_bad_arguments_are_one_line_usage_errors(argv, message, capsys):
    assert main(["check-plugin", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


NEEDS_PARAMS = """
from typing import ClassVar, Literal
from diffprior.config.bases import TermConfig
from diffprior.plugins.hooks import hookimpl

class LevelConfig(TermConfig):
    type: Literal["level"] = "level"
    default_weight: ClassVar = 1.0
    default_clip: ClassVar = "none"
    level: float  # required: no default to check with

    def build(self, ctx):
        from diffprior import Term
        level = self.level

        class Level(Term):
            def log_c(self, x):
                return -((x.flatten(1) - level) ** 2).mean(1)

        return Level(self, ctx)

@hookimpl
def register_terms(register):
    register(LevelConfig)
"""


def test_a_type_that_needs_params_is_skipped_until_they_are_given(tmp_path):
    box = PluginSandbox(tmp_path)
    box.add_distribution("diffprior-level", {"diffprior_level.py": NEEDS_PARAMS}, {"level": "diffprior_level"})
    env = box.env(DIFFPRIOR_PLUGINS="diffprior-level")
    skipped = box.cli("check-plugin", "diffprior-level", env=env)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert _rows(skipped.stdout)[("config", "level")] == "skipped"
    assert "needs params: pass --params 'level={...}'" in skipped.stdout
    given = box.cli("check-plugin", "diffprior-level", "--params", 'level={"level": 0.25}', env=env)
    assert given.returncode == 0, given.stdout + given.stderr
    assert _rows(given.stdout)[("per-sample independence", "level")] == "ok"
