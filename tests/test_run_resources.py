"""benchmarks/run_resources.py without training: the memory probe, the ratios and goals, disk accounting, the report."""

from __future__ import annotations

import argparse
import json
import pickle
import time

import numpy as np
import pytest

from benchmarks import run_resources as rr

MIB = 2**20


def test_memory_probe_sees_an_allocation_and_its_release():
    with rr.MemoryProbe(interval_s=0.001) as probe:
        block = np.ones(256 * MIB, dtype=np.uint8)  # touched: resident
        time.sleep(0.05)
        del block
    assert probe.samples > 1
    assert probe.sampled_peak_bytes - probe.baseline_bytes > 200 * MIB
    assert probe.increment_bytes > 200 * MIB
    if probe.hwm_reset:  # VmHWM reset allowed here: the exact peak agrees
        assert probe.hwm_bytes - probe.baseline_bytes > 200 * MIB
    # released again: a second probe starts near the first one's baseline and sees no large peak
    with rr.MemoryProbe(interval_s=0.001) as quiet:
        time.sleep(0.02)
    assert quiet.increment_bytes < 64 * MIB
    assert set(probe.to_dict()) >= {"baseline_bytes", "peak_bytes", "increment_bytes", "hwm_bytes"}


@pytest.mark.parametrize(("key", "value", "met"), [
    ("student_peak_memory_vs_stock_2d", 1.05, True),
    ("student_peak_memory_vs_stock_3d", 1.2, False),
    ("cache_bytes_vs_save_probabilities_3d", 1.0, True),
    ("cache_bytes_vs_save_probabilities_3d", 1.01, False),
    ("pass_case_models_per_s_vs_nnunet_2d", 0.95, True),
    ("pass_case_models_per_s_vs_nnunet_3d_no_mirroring", 0.5, False),
    ("student_time_per_iteration_vs_stock_2d", 1.9, None),  # no goal
    ("student_peak_memory_vs_stock_2d", None, None),
])
def test_goals(key, value, met):
    e = rr.entry(key, value, {"x": 1}, "python cmd")
    assert e["met"] is met if key in rr.GOALS else "met" not in e
    assert e["value"] == value and e["command"] == "python cmd" and e["details"] == {"x": 1}


def _run(increment_mib: float, seconds: float, batch: int = 2, unlabeled: int = 0) -> dict:
    baseline = 1000 * MIB
    memory = {"baseline_bytes": baseline, "peak_bytes": baseline + increment_mib * MIB,
              "increment_bytes": increment_mib * MIB, "sampled_peak_bytes": baseline + increment_mib * MIB,
              "hwm_bytes": None}
    run = {"trainer": "T", "memory": memory, "s_per_iteration_median": seconds, "cpu_s_per_iteration_median": seconds,
           "s_per_iteration": [seconds], "batch_size": batch, "patch_size": [64, 64], "num_classes": 4,
           "parameters": 10, "labeled_cases": 5}
    if unlabeled:
        run.update(unlabeled_batch=unlabeled, unlabeled_cases=3)
    return run


def test_memory_entries_compare_increments_above_the_start_of_training():
    runs = {"stock": _run(1000, 2.0), "student": _run(1050, 4.0, unlabeled=2), "joint": _run(2000, 3.8, unlabeled=2)}
    entries = rr.memory_entries("3d_fullres", runs, {"dataset": "D"}, "python cmd")
    memory = entries["student_peak_memory_vs_stock_3d"]
    assert memory["value"] == pytest.approx(1.05) and memory["met"] is True
    assert memory["details"]["absolute_peak_ratio"] == pytest.approx(2050 / 2000)
    assert memory["details"]["joint_pass_vs_stock"] == pytest.approx(2.0)
    timing = entries["student_time_per_iteration_vs_stock_3d"]
    assert timing["value"] == pytest.approx(2.0) and "goal" not in timing
    assert timing["details"]["per_sample_ratio"] == pytest.approx(1.0)  # 4 samples in 4 s vs 2 in 2 s


def test_cache_and_pass_entries():
    ours = {"bytes_per_case": 600.0, "files_per_case": {"_maps.b2nd": 100.0, "_means.b2nd": 400.0, ".pkl": 100.0},
            "voxels_per_case": 100.0, "class_locations_bytes_per_case": 50.0}
    nnunet = {"bytes_per_case": {"npz": 900.0, "pkl": 100.0, "segmentation": 200.0}, "voxels_per_case": 100.0}
    e = rr.cache_entry(ours, nnunet, {"cases": 1}, "cmd")["cache_bytes_vs_save_probabilities_3d"]
    assert e["value"] == pytest.approx(0.6) and e["met"] is True
    assert e["details"]["vs_with_segmentation"] == pytest.approx(0.5)
    assert e["details"]["ours_bytes_per_voxel"] == pytest.approx(6.0)
    assert e["details"]["nnunet_with_segmentation_bytes_per_voxel"] == pytest.approx(12.0)
    runs = {("ours", True): {"case_models_per_s": 2.0, "cases": 3, "models": 2},
            ("nnunet", True): {"case_models_per_s": 1.0},
            ("ours", False): {"case_models_per_s": 4.0, "cases": 3, "models": 2},
            ("nnunet", False): {"case_models_per_s": 5.0}}
    entries = rr.pass_entries("2d", runs, {"patch_size": [64, 64]}, "cmd")
    assert entries["pass_case_models_per_s_vs_nnunet_2d"]["value"] == pytest.approx(2.0)
    assert entries["pass_case_models_per_s_vs_nnunet_2d"]["met"] is True
    assert entries["pass_case_models_per_s_vs_nnunet_2d_no_mirroring"]["value"] == pytest.approx(0.8)
    assert entries["pass_case_models_per_s_vs_nnunet_2d_no_mirroring"]["met"] is False


def test_nnunet_bytes_reads_the_probabilities_shape_from_the_npz_header(tmp_path):
    for case in ("a", "b"):
        np.savez_compressed(tmp_path / f"{case}.npz", probabilities=np.zeros((3, 4, 5, 6), dtype=np.float32))
        (tmp_path / f"{case}.pkl").write_bytes(pickle.dumps({"spacing": [1, 1, 1]}))
        (tmp_path / f"{case}.nii.gz").write_bytes(b"x" * 10)
    out = rr.nnunet_bytes(tmp_path, ["a", "b"])
    assert out["voxels_per_case"] == 4 * 5 * 6 and out["classes"] == 3
    assert out["bytes_per_case"]["segmentation"] == 10
    assert out["bytes_per_case"]["npz"] == (tmp_path / "a.npz").stat().st_size


def test_cache_bytes_counts_every_file_of_an_entry(tmp_path):
    import torch

    from nnunet_dumm.cache import CacheContents, PseudoLabelCache
    from nnunet_dumm.config import DUMMConfig
    from nnunet_dumm.uncertainty import EnsembleStatistics

    cache = PseudoLabelCache(tmp_path / "cache")
    cache.write_sources({"test": 1, "contents": CacheContents.of_round(DUMMConfig(), 0).to_dict()})
    probabilities = torch.softmax(torch.randn(3, 4, 8, 8), 0)
    stats = EnsembleStatistics.empty(3, probabilities.shape[1:])
    stats.add(probabilities)
    stats.add(probabilities.flip(1))
    cache.write("case", stats, ["m0", "m1"], (4, 8, 8), [1, 2])
    out = rr.cache_bytes(cache.folder, ["case"])
    assert set(out["files_per_case"]) == {"_maps.b2nd", "_means.b2nd", ".pkl"}  # the default trainer's contents
    assert out["bytes_per_case"] == sum((cache.folder / f"case{s}").stat().st_size
                                        for s in ("_maps.b2nd", "_means.b2nd", ".pkl"))
    assert out["voxels_per_case"] == 4 * 8 * 8 and out["class_locations_bytes_per_case"] > 0


def test_report_keeps_earlier_keys_and_lists_commands(tmp_path):
    args = argparse.Namespace(results_dir=tmp_path, parts=["memory3d"])
    runs = {"stock": _run(1000, 2.0), "student": _run(1050, 4.0, unlabeled=2)}
    rr.write_report(args, rr.memory_entries("3d_fullres", runs, {}, "python first"), wall_s=60)
    runs2 = {"stock": _run(500, 1.0), "student": _run(510, 2.0, unlabeled=2)}
    rr.write_report(args, rr.memory_entries("2d", runs2, {}, "python second"), wall_s=30)
    report = json.loads((tmp_path / "resources.json").read_text())
    assert list(k for k in report if k in rr.KEYS) == ["student_peak_memory_vs_stock_2d",
                                                       "student_time_per_iteration_vs_stock_2d",
                                                       "student_peak_memory_vs_stock_3d",
                                                       "student_time_per_iteration_vs_stock_3d"]
    assert report["student_peak_memory_vs_stock_3d"]["command"] == "python first"
    assert len(report["runs"]) == 2 and "machine" in report
    markdown = (tmp_path / "resources.md").read_text()
    assert "python first" in markdown and "python second" in markdown and "`student_peak_memory_vs_stock_2d` | 1.02" \
        in markdown


def test_confident_maps_check_writes_both_formats(tmp_path):
    checks = rr.confident_maps_check(tmp_path / "confident", (16, 16, 16), (16, 16, 16), margins=(8.0,), members=2)
    (check,) = checks
    assert check["voxels"] == 16**3 and check["nnunet_npz_bytes"] > 0
    assert set(check["ours_files_per_case"]) == {"_maps.b2nd", "_means.b2nd", ".pkl"}
    assert 0 <= check["mean_normalised_entropy"] < 0.5  # confident maps
