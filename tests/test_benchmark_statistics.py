"""The benchmark's paired bootstrap interval and summary file, on numbers with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.reports import report_file, update_summary
from benchmarks.stats import bootstrap_difference


def _scores(values: np.ndarray) -> dict[str, list[float]]:
    return {f"case{i:02d}": list(map(float, row)) for i, row in enumerate(values)}


def test_a_constant_improvement_is_measured_exactly_and_excludes_zero():
    rng = np.random.default_rng(0)
    reference = rng.uniform(0.5, 0.9, size=(20, 1))
    result = bootstrap_difference(_scores(reference + 0.02), _scores(reference))
    assert result["mean_diff"] == pytest.approx(0.02)
    assert result["ci95"] == pytest.approx([0.02, 0.02])
    assert result["significant"]


def test_pairing_removes_the_spread_between_cases():
    # cases differ by a lot, the rows by a little on every case: a paired interval sees it, an unpaired would not
    rng = np.random.default_rng(1)
    cases = rng.uniform(0.2, 0.95, size=(20, 1))
    reference = cases + rng.normal(0, 0.002, size=(20, 3))
    row = cases + 0.01 + rng.normal(0, 0.002, size=(20, 3))
    result = bootstrap_difference(_scores(row), _scores(reference))
    assert result["seeds"] == 3 and result["reference_seeds"] == 3
    assert 0 < result["ci95"][0] < 0.01 < result["ci95"][1] < 0.03


def test_noise_without_a_difference_gives_an_interval_around_zero():
    rng = np.random.default_rng(2)
    reference = rng.uniform(0.5, 0.9, size=(20, 1))
    result = bootstrap_difference(_scores(reference + rng.normal(0, 0.05, size=(20, 1))), _scores(reference))
    assert result["ci95"][0] < 0 < result["ci95"][1]
    assert not result["significant"]


def test_seed_spread_widens_the_interval():
    rng = np.random.default_rng(3)
    reference = rng.uniform(0.5, 0.9, size=(20, 1))
    one_seed = bootstrap_difference(_scores(reference + 0.03), _scores(reference))
    seed_effects = np.array([[-0.04, 0.03, 0.10]])  # seeds disagree about the gain
    seeds = bootstrap_difference(_scores(reference + seed_effects), _scores(reference))
    assert seeds["mean_diff"] == pytest.approx(0.03)
    width = lambda r: r["ci95"][1] - r["ci95"][0]  # noqa: E731
    assert width(seeds) > width(one_seed) + 0.05


def test_summary_entries_are_replaced_by_dataset_preset_and_budget(tmp_path):
    path = tmp_path / "summary.json"
    update_summary(path, {"dataset": "acdc", "preset": "proxy", "labeled": 7, "x": 1})
    update_summary(path, {"dataset": "isic", "preset": "proxy", "labeled": "10pct", "x": 2})
    update_summary(path, {"dataset": "acdc", "preset": "proxy", "labeled": 7, "x": 3})
    entries = json.loads(path.read_text())["entries"]
    assert [(e["dataset"], e["x"]) for e in entries] == [("acdc", 3), ("isic", 2)]


def test_report_files_keep_the_whole_stem_when_it_holds_a_dot(tmp_path):
    # a smaller network's reports: Path.with_suffix took ".5_3seeds" for a suffix and wrote "..._features0.md"
    stem = tmp_path / "acdc_learning_curve_L7_ds4_nnUNetPlans_features0.5_3seeds"
    assert [report_file(stem, s).name for s in (".md", ".png")] == [
        "acdc_learning_curve_L7_ds4_nnUNetPlans_features0.5_3seeds.md",
        "acdc_learning_curve_L7_ds4_nnUNetPlans_features0.5_3seeds.png"]


def test_a_report_lists_the_steps_of_its_own_run_with_earlier_timings_of_resumed_ones(tmp_path):
    # a quality run in a learning curve's work dir had listed the curve's dev predictions among its own steps
    from benchmarks.common import StepLog

    log = tmp_path / "benchmark_steps.json"
    log.write_text(json.dumps({name: {"description": name, "wall_s": 300.0, "skipped": False}
                               for name in ("curve_dev_1000", "train_a")}))  # what an earlier run recorded
    quality = StepLog(log, total=0)
    with quality.step("train_a", "train_a") as record:
        record["skipped"] = True  # found on disk
    with quality.step("report", "report"):
        pass
    assert list(quality.of_this_run) == ["train_a", "report"]
    assert quality.of_this_run["train_a"]["wall_s"] == 300.0
    assert "curve_dev_1000" not in quality.table() and "5.0 min" in quality.table()
    assert set(json.loads(log.read_text())) == {"curve_dev_1000", "train_a", "report"}  # the resume record keeps all


def test_overlapping_pauses_are_taken_out_once(tmp_path):
    # two paused test runs at once logged overlapping intervals; their sum had made a step's wall time negative
    from benchmarks.common import StepLog

    log = tmp_path / "benchmark_steps.json"
    steps = StepLog(log, total=0)
    pauses = [(100.0, 160.0), (120.0, 150.0), (140.0, 170.0), (300.0, 400.0)]
    (tmp_path / "pauses.jsonl").write_text("".join(json.dumps({"start": a, "end": b}) + "\n" for a, b in pauses))
    assert steps.paused_between(0.0, 200.0) == 70.0  # [100, 170] once
    assert steps.paused_between(150.0, 350.0) == 20.0 + 50.0  # clipped to the window at both ends
    assert steps.paused_between(200.0, 290.0) == 0.0
