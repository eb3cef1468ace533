"""Property: whatever a config file says, diffprior either accepts it (and a step of the run
works) or exits 2 with an error message; never a traceback, never exit 1 before the
optimisation starts.

Configs are generated from a small valid one by setting random keys (known ones and
unknown ones) to random values of random types: huge, negative and non-finite numbers,
booleans, strings with control characters, lists, schedule tables. The configs that found
bugs while this was written are kept in tests/configs/broken/ (see test_config_errors).
``pytest -m slow tests/test_config_properties.py`` runs many more examples.
"""

from __future__ import annotations

import json
import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from diffprior.cli.main import main  # noqa: E402

BASE = {
    "batch": 2,
    "prior": {"type": "gaussian", "shape": [1, 4, 4], "mean": 0.2, "var": 0.5},
    "terms": [{"type": "match", "target": -0.3, "noise": 0.5}],
    "optimizer": {"type": "adam", "lr": 0.05, "steps": 3},
    "timesteps": {"type": "constant", "value": 100},
}

KEYS = [
    "seed", "batch", "device", "gradient", "noise_samples", "prior_weight", "timesteps", "timesteps.jitter",
    "timesteps.value", "optimizer.lr", "optimizer.steps", "optimizer.type", "optimizer.betas", "optimizer.momentum",
    "optimizer.weight_decay", "init", "init.type", "init.scale", "init.path", "denoise", "denoise.from_t",
    "denoise.steps", "denoise.method", "prior.shape", "prior.mean", "prior.var", "prior.T", "prior.noise_schedule",
    "prior.type", "variable", "variable.type", "terms", "terms.0.type", "terms.0.target", "terms.0.noise",
    "terms.0.weight", "terms.0.clip", "terms.0.name", "terms.0.mask", "unknown_key", "optimizer.unknown",
]

numbers = st.one_of(
    st.integers(-3, 8), st.integers(2**62, 2**65), st.sampled_from([0, 1, 999, 1000, 5000, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-1.0, 0.0, 1e-30, 1e30, 0.999, 1.0]),
)
texts = st.one_of(st.sampled_from(["cpu", "cuda", "tpu", "adam", "linear", "gaussian", "match", "file", "ddim",
                                   "a\x07b", "", " x ", "prior", "none", "sds"]),
                  st.text(max_size=6))
schedules = st.one_of(
    st.builds(lambda a, b: {"linear": [a, b]}, numbers, numbers),
    st.builds(lambda a, b: {"cosine": [a, b]}, numbers, numbers),
    st.builds(lambda v, j: {"type": "constant", "value": v, "jitter": j}, numbers, numbers),
    st.builds(lambda v: {"max_norm": v}, numbers),
    st.builds(lambda v, e: {"relative": v, "ema": e}, numbers, numbers),
    st.builds(lambda t: {"type": t}, texts),
    st.builds(lambda f: {"from_t": f}, numbers),
)
values = st.one_of(
    st.none(), st.booleans(), numbers, texts, schedules,
    st.lists(st.one_of(st.integers(-2, 6), st.floats(-2, 2), st.booleans()), max_size=4),
)


def set_key(data: dict, path: str, value) -> None:
    parts = path.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            if not isinstance(node, list) or int(part) >= len(node):
                return
            node = node[int(part)]
        else:
            if not isinstance(node, dict):
                return
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]
    last = parts[-1]
    if isinstance(node, dict):
        node[last] = value


def strip_none(value):
    """TOML has no null: what a config file can say."""
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_none(v) for v in value if v is not None]
    return value


configs = st.builds(
    lambda changes: _apply(changes),
    st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=1, max_size=4),
)


def _apply(changes):
    data = json.loads(json.dumps(BASE))
    for path, value in changes:
        set_key(data, path, value)
    return strip_none(data)


def small_enough_to_run(data) -> bool:
    """Validated configs are run for one step when that costs little; memory refusals are
    tested on their own (test_config_errors: batch_too_large)."""
    try:
        batch = int(data.get("batch", 1))
        numel = math.prod(int(d) for d in data["prior"].get("shape", [16]))
        steps = int(data.get("optimizer", {}).get("steps", 1000))
        samples = int(data.get("noise_samples", 1))
        denoise = int((data.get("denoise") or {}).get("from_t", 0))
    except (TypeError, ValueError, KeyError, AttributeError):
        return False
    return batch * numel <= 4096 and steps <= 10 and samples <= 8 and denoise <= 50


def check(data, tmp_path, capsys) -> None:
    path = tmp_path / "generated.json"
    path.write_text(json.dumps(data))
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err, (data, err)
    assert code in (0, 2), (data, code, err)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    if code == 2:
        assert len(errors) == 1, (data, err)
        return
    assert not errors, (data, err)
    if not small_enough_to_run(data):
        return
    out = tmp_path / "run"
    code = main(["run", str(path), "--out", str(out), "--quiet", "--overwrite"])
    err = capsys.readouterr().err
    assert "Traceback" not in err, (data, err)
    # 2: only what needs the built objects (no CUDA); 1: only a numerical failure during the run
    assert code == 0 or (code == 2 and "CUDA" in err) or (code == 1 and "not finite" in err), (data, code, err)


@settings(max_examples=30, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],  # no shrinking: fast
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=configs)
def test_any_generated_config_is_accepted_or_a_clear_exit_2(data, tmp_path, capsys):
    check(data, tmp_path, capsys)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=configs)
def test_many_generated_configs(data, tmp_path, capsys):
    check(data, tmp_path, capsys)
