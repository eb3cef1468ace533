"""The figures of benchmarks/digits.py: diversity and its bootstrap interval, accuracy intervals."""

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("digits_benchmark", ROOT / "benchmarks" / "digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_diversity_is_the_mean_distance_between_distinct_samples(bench):
    # two black and two white images: 4 of the 6 pairs are 1 apart (RMS in [0, 1]), 2 are 0
    x = torch.tensor([-1.0, -1.0, 1.0, 1.0]).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert bench.diversity(x) == pytest.approx(4 / 6)
    assert bench.diversity(torch.zeros(5, 1, 3, 3)) == 0.0


def test_diversity_interval_holds_the_estimate_and_ignores_a_sample_drawn_twice(bench):
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    lo, hi = bench.diversity_interval(x)
    assert lo < bench.diversity(x) < hi
    # all samples equally far apart: every resample has that mean, whatever it repeats
    corners = torch.eye(4).view(4, 1, 2, 2) * 2 - 1
    assert bench.diversity_interval(corners) == pytest.approx([bench.diversity(corners)] * 2)


def test_accuracy_interval_is_degenerate_only_when_every_sample_agrees(bench):
    judge = type("Judge", (), {})()
    judge.features = lambda x: x.flatten(1)[:, :3]
    for hits, expect_width in ((16, 0.0), (8, 0.2)):
        p = torch.zeros(16, 10)
        p[:hits, 3], p[hits:, 5] = 1.0, 1.0
        judge.probabilities = lambda x, p=p: p
        x = torch.randn(16, 1, 4, 4, generator=torch.Generator().manual_seed(1))
        figures = bench.judge_figures(x, judge, 3, x.flatten(1)[:, :3])
        lo, hi = figures["judge acc 95%"]
        assert figures["judge acc"] == hits / 16 and lo <= hits / 16 <= hi
        assert hi - lo >= expect_width if expect_width else lo == hi == 1.0


def test_summary_gives_the_mean_accuracy_over_classes_with_its_interval(bench):
    rows = []
    for digit, hits in ((0, [1.0] * 16), (1, [1.0] * 8 + [0.0] * 8)):
        rows.append({"constraint": f"class {digit}", "condition": "real heldout", "judge conf": 0.9, "diversity": 0.3})
        rows.append({"constraint": f"class {digit}", "condition": "prior + constraint", "judge acc": sum(hits) / 16,
                     "hits": hits, "judge conf": 0.95, "diversity": 0.15, "seconds": 10.0})
    summary = bench.summarise(rows)
    lo, hi = summary["judge acc mean 95%"]
    assert summary["judge acc mean"] == 0.75 and lo < 0.75 < hi and hi <= 1.0
    assert summary["diversity / real, mean"] == pytest.approx(0.5)


def test_merge_puts_rerun_rows_in_place_and_keeps_the_others(bench, tmp_path):
    import json

    old = [{"constraint": "—", "condition": "real", "judge conf": 0.93},
           {"constraint": "class 0", "condition": "prior + constraint", "judge conf": 0.99},
           {"constraint": "thin", "condition": "prior + constraint", "judge conf": 0.50, "classes": [0, 3] + [0] * 8}]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"rows": old}))
    new = [{"constraint": "thin", "condition": "prior + constraint", "judge conf": 0.92, "classes": [1, 1, 1, 1] + [0] * 6},
           {"constraint": "symmetry", "condition": "prior + constraint", "judge conf": 0.95, "classes": [0] * 9 + [2]}]
    rows = bench.merged_rows(path, new)
    assert [(r["constraint"], r["judge conf"]) for r in rows] == [("—", 0.93), ("class 0", 0.99), ("thin", 0.92),
                                                                  ("symmetry", 0.95)]
    summary = bench.summarise(rows)
    assert summary["thin: distinct confident classes"] == 4 and summary["symmetry: distinct confident classes"] == 1
    assert summary["thin: conf gap (samples - real digits)"] == pytest.approx(-0.01)
    assert bench.merged_rows(tmp_path / "none.json", new) == new
