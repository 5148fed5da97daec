"""The quality benchmark's plan: which models each row needs and in which order they can be trained."""

from __future__ import annotations

import argparse
import json

from benchmarks.run_quality import ROWS, available_rows, training_stages, write_default_split


def _args(arms: list[str], seeds: list[int]) -> argparse.Namespace:
    return argparse.Namespace(dataset="isic", preset="proxy", teacher_folds=5, plans="nnUNetPlans", seeds=seeds,
                              arms=arms)


def test_a_second_generation_trains_after_all_five_dumm_folds_it_learns_from():
    args = _args(["stock", "stock_ensemble", "dumm", "gen2"], [0, 1])
    stock, students, second_generation = training_stages(available_rows(args), args)
    assert [(m.trainer, m.fold) for m in stock] == [("nnUNetTrainerStock_1000it", f) for f in range(5)] + \
        [("nnUNetTrainerStock_1000it", 0)]  # the teachers, then stock fold 0 of seed 1
    # the DUMM folds 0-4 are trained although their ensemble row is not reported: they are gen2's teachers
    assert {(m.trainer, m.fold, m.seed) for m in students} == \
        {("nnUNetTrainerDUMM_1000it", f, 0) for f in range(5)} | {("nnUNetTrainerDUMM_1000it", 0, 1)}
    assert [(m.trainer, m.fold, m.seed, m.root) for m in second_generation] == \
        [("nnUNetTrainerDUMM_gen2_1000it", 0, 0, "nnUNet_results")]
    assert all(m.root == "nnUNet_results" for m in students if m.seed == 0)  # where gen2 looks for its teachers


def test_without_a_second_generation_nothing_waits():
    args = _args([row.key for row in ROWS if row.key != "gen2"], [0])
    _, students, second_generation = training_stages(available_rows(args), args)
    assert second_generation == []
    assert any(m.trainer == "nnUNetTrainerDUMM_copyPaste_1000it" for m in students)


def test_the_dev_dataset_gets_nnunets_default_split_before_any_model_trained(tmp_path):
    raw, preprocessed = tmp_path / "raw", tmp_path / "pre"
    (raw / "labelsTr").mkdir(parents=True)
    preprocessed.mkdir()
    (raw / "dataset.json").write_text(json.dumps({"file_ending": ".png"}))
    cases = [f"ISIC_{i:07d}" for i in range(12)]
    for case in cases:
        (raw / "labelsTr" / f"{case}.png").write_bytes(b"")
    splits = json.loads(write_default_split(preprocessed, raw).read_text())
    assert len(splits) == 5
    assert sorted(c for fold in splits for c in fold["val"]) == cases  # every case validates in exactly one fold
    assert all(sorted(fold["train"] + fold["val"]) == cases for fold in splits)

    # a converter's own split (ACDC: grouped by patient) is the one kept
    grouped = [{"train": cases[:6], "val": cases[6:]}]
    (preprocessed / "splits_final.json").write_text(json.dumps(grouped))
    assert json.loads(write_default_split(preprocessed, raw).read_text()) == grouped
