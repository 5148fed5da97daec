"""The quality benchmark's plan: which models each row needs, in which order they are trained, what each row is
compared with, and how a work dir's models and predictions are checked before they are reused."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace

import pytest

from benchmarks.datasets import write_default_split
from benchmarks.rows import (
    COMPARISONS,
    ROWS,
    SUMMARY_PAIRS,
    available_rows,
    default_arms,
    models_of,
    trainer_class,
    training_stages,
)
from benchmarks.stats import compare_rows


def _args(arms: list[str], seeds: list[int], seed_every_row: bool = False) -> argparse.Namespace:
    return argparse.Namespace(dataset="isic", preset="proxy", proxy_budget=None, teacher_folds=5, plans="nnUNetPlans",
                              seeds=seeds, arms=arms, seed_every_row=seed_every_row)


def test_the_stock_models_train_first_then_the_students_of_their_teachers():
    args = _args(["stock", "stock_ensemble", "dumm", "dumm_paper"], [0, 1])
    stock, students = training_stages(available_rows(args), args)
    assert [(m.trainer, m.fold) for m in stock] == [("nnUNetTrainerStock_1000it", f) for f in range(5)] + \
        [("nnUNetTrainerStock_1000it", 0)]  # the teachers, then stock fold 0 of seed 1
    assert [(m.trainer, m.fold, m.seed, m.root) for m in students] == [
        ("nnUNetTrainerDUMM_1000it", 0, 0, "nnUNet_results"),
        ("nnUNetTrainerDUMM_1000it", 0, 1, "nnUNet_results_seed1"),
        ("nnUNetTrainerDUMM_paper_1000it", 0, 0, "nnUNet_results")]  # the paper's setting: one seed


def test_ablations_take_every_seed_only_when_asked():
    arms = ["stock_ensemble", "dumm", "dumm_nopum", "dumm_nosus"]
    _, students = training_stages(available_rows(_args(arms, [0, 1])), _args(arms, [0, 1]))
    assert {(m.trainer, m.seed) for m in students} == {("nnUNetTrainerDUMM_1000it", 0), ("nnUNetTrainerDUMM_1000it", 1),
                                                       ("nnUNetTrainerDUMM_noPUM_1000it", 0),
                                                       ("nnUNetTrainerDUMM_noSUS_1000it", 0)}
    every = _args(arms, [0, 1], seed_every_row=True)
    _, students = training_stages(available_rows(every), every)
    assert {(m.trainer, m.seed, m.root) for m in students if m.trainer != "nnUNetTrainerDUMM_1000it"} == {
        (f"nnUNetTrainerDUMM_{variant}_1000it", seed, "nnUNet_results" if seed == 0 else "nnUNet_results_seed1")
        for variant in ("noPUM", "noSUS") for seed in (0, 1)}


@pytest.mark.parametrize("row, trainer", [("dumm", "nnUNetTrainerDUMM_1000it"),
                                          ("no_mask", "nnUNetTrainerDUMM_noMask_1000it")])
def test_a_seeded_row_and_its_student_ensemble_share_fold_0_of_seed_0(row, trainer):
    arms = ["stock_ensemble", row, f"{row}_ensemble"]
    _, students = training_stages(available_rows(_args(arms, [0, 1])), _args(arms, [0, 1]))
    assert {(m.trainer, m.fold, m.seed) for m in students} == {
        *((trainer, 0, seed) for seed in (0, 1)), *((trainer, fold, 0) for fold in range(1, 5))}


@pytest.mark.parametrize("preset, dataset", [("test", "isic"), ("proxy", "isic"), ("proxy", "acdc"),
                                             ("gpuwin", "acdc")])
def test_every_row_trains_a_trainer_that_exists(preset, dataset):
    """The row arms are the package's trainers, on benchmarks/trainers.py's presets (the renamed ones included)."""
    args = _args([row.key for row in ROWS], [0])
    args.preset, args.dataset = preset, dataset
    rows = available_rows(args)
    assert {row.key for row in rows} >= {"stock", "dumm", "dumm_paper", "no_mask", "oracle"}
    missing = [m.trainer for m in models_of(rows, args) if trainer_class(m.trainer) is None]
    assert missing == []
    paper = [m.trainer for m in models_of([row for row in rows if row.key == "dumm_paper"], args)]
    assert all(trainer_class(t).dumm_config.pixel_threshold_mode == "fixed" for t in paper)
    recommended = [m.trainer for m in models_of([row for row in rows if row.key == "dumm"], args)]
    assert all(trainer_class(t).dumm_config.pixel_threshold_mode == "class_quantile" for t in recommended)


def test_the_seeded_presets_run_every_row_but_the_oracle_ones_and_the_mirroring_choice_by_default():
    assert default_arms("proxy") == default_arms("gpuwin") == [
        row.key for row in ROWS if not row.oracle and row.key != "dumm_no_mirroring"]
    assert "dumm_paper" in default_arms("proxy") and "oracle" not in default_arms("proxy")
    assert default_arms("cpu") == ["stock", "stock_ensemble", "pseudo_label", "dumm_nosus", "dumm_nopum", "dumm",
                                   "dumm_paper"]


def test_every_comparison_names_rows_that_exist():
    keys = {row.key for row in ROWS}
    assert {key for pair in (*COMPARISONS, *SUMMARY_PAIRS) for key in pair} <= keys
    assert len(set(COMPARISONS)) == len(COMPARISONS)
    assert set(SUMMARY_PAIRS) <= set(COMPARISONS)
    # no pair both ways round
    assert not {(b, a) for a, b in COMPARISONS} & set(COMPARISONS)


@pytest.mark.parametrize("teacher_folds", [3, 5])
def test_an_ensemble_row_is_named_by_its_number_of_folds(teacher_folds):
    labels = {row.key: row.label_for(teacher_folds) for row in ROWS}
    assert labels["stock_ensemble"] == f"stock nnU-Net {teacher_folds}-fold ensemble (the teachers)"
    assert all(f"{teacher_folds}-fold" in labels[row.key] for row in ROWS if row.ensemble)
    assert not any("{" in label or ("-fold" in label) != row.ensemble for row, label in zip(ROWS, labels.values()))


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


def test_the_cores_split_among_the_trainings_that_run_at_once():
    from benchmarks.run_quality import threads_per_job

    assert threads_per_job(cores=2, jobs=2, models=5) == 1  # five teachers, two at a time
    assert threads_per_job(cores=2, jobs=2, models=1) == 2  # the student alone after them: both cores
    assert threads_per_job(cores=2, jobs=3, models=3) == 1  # more jobs than cores: one thread each, never 0
    assert threads_per_job(cores=16, jobs=4, models=2) == 8


def test_a_training_continued_in_a_later_session_reports_all_its_epochs(tmp_path):
    # a stock fold trained over two sessions reported 25 min, the last part of 53 min of epochs
    import torch

    from benchmarks.common import StepLog
    from benchmarks.run_quality import epochs_seconds

    steps = StepLog(tmp_path / "benchmark_steps.json", total=0)
    (tmp_path / "pauses.jsonl").write_text(json.dumps({"start": 1030.0, "end": 1040.0}) + "\n")  # inside epoch 1
    torch.save({"logging": {"epoch_start_timestamps": [1000.0, 1020.0, 5000.0],
                            "epoch_end_timestamps": [1020.0, 1050.0, 5025.0]}}, tmp_path / "checkpoint_final.pth")
    assert epochs_seconds(tmp_path, steps) == 20.0 + 20.0 + 25.0  # the gap between the sessions does not count
    with steps.step("train_a", "train a") as record:
        record["epochs_s"] = 3900.0
    assert "its epochs took 65.0 min in all" in steps.table()


def test_oracle_rows_train_apart_from_the_teachers_and_students():
    from benchmarks.run_quality import step_name

    args = _args(["stock", "stock_ensemble", "dumm", "oracle", "oracle_2x"], [0])
    rows = available_rows(args)
    stock, students = training_stages(rows, args)
    assert not any(m.oracle for m in [*stock, *students])
    oracle = models_of([row for row in rows if row.oracle], args)
    assert [(m.trainer, m.fold, m.oracle) for m in oracle] == [("nnUNetTrainerStock_1000it", 0, True),
                                                                ("nnUNetTrainerStock_2000it", 0, True)]
    # the same trainer and fold as stock fold 0, but another model with its own step record
    assert oracle[0] not in stock
    names = {step_name(stock[0], "Dataset932_ISIC_10pct_64px_dev"),
             step_name(oracle[0], "Dataset934_ISIC_10pct_64px_dev_oracle"),
             step_name(stock[0], "Dataset931_ISIC_10pct_64px"),
             # a smaller network's stock fold 0 (a plans variant) would have shown the full network's timing
             step_name(replace(stock[0], plans="nnUNetPlans_features0.5"), "Dataset931_ISIC_10pct_64px")}
    assert len(names) == 4


def test_the_oracle_adds_the_pool_to_training_never_to_validation():
    from benchmarks.datasets import oracle_splits

    splits = [{"train": ["a", "b"], "val": ["c"]}, {"train": ["a", "c"], "val": ["b"]}]
    assert oracle_splits(splits, ["u1", "u2"]) == [{"train": ["a", "b", "u1", "u2"], "val": ["c"]},
                                                   {"train": ["a", "c", "u1", "u2"], "val": ["b"]}]


def test_the_oracle_dataset_has_the_students_plans_and_the_pool_with_its_labels(planned, tmp_path):
    import os
    from pathlib import Path

    import numpy as np
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    from benchmarks.common import StepLog
    from benchmarks.datasets import oracle_dataset_name, prepare_oracle
    from nnunet_dumm.demo import DATASET_NAME
    from nnunet_dumm.demo_data import DEMO_DATASET_ID

    folders = {k: Path(os.environ[k]) for k in ("nnUNet_raw", "nnUNet_preprocessed")}
    args = argparse.Namespace(plans="nnUNetPlans", network_scale=1.0)
    steps = StepLog(tmp_path / "benchmark_steps.json", total=0)
    oracle = prepare_oracle(args, folders, steps, DATASET_NAME, DEMO_DATASET_ID)
    assert oracle == oracle_dataset_name(DATASET_NAME, DEMO_DATASET_ID)[0]

    source, target = folders["nnUNet_preprocessed"] / DATASET_NAME, folders["nnUNet_preprocessed"] / oracle
    plans, source_plans = (json.loads((f / "nnUNetPlans.json").read_text()) for f in (target, source))
    assert {**plans, "dataset_name": None} == {**source_plans, "dataset_name": None}
    file_ending = json.loads((planned / "dataset.json").read_text())["file_ending"]
    pool = sorted(p.name[: -len(file_ending)] for p in (planned / "labelsUnlabeled").glob(f"*{file_ending}"))
    assert pool
    splits, source_splits = (json.loads((f / "splits_final.json").read_text()) for f in (target, source))
    assert [fold["val"] for fold in splits] == [fold["val"] for fold in source_splits]
    assert all(set(pool) <= set(fold["train"]) for fold in splits)

    data = nnUNetDatasetBlosc2(str(target / plans["configurations"]["2d"]["data_identifier"]))
    assert set(pool) <= set(data.identifiers)
    _, seg, _, _ = data.load_case(pool[0])
    true_label = np.asarray(seg[:])
    assert true_label.max() > 0  # the pool case came with its true label, not an empty one

    assert prepare_oracle(args, folders, steps, DATASET_NAME, DEMO_DATASET_ID) == oracle
    assert "resumed_skip_s" in steps.steps[f"prepare_{oracle}"]  # a rerun finds it done and keeps its wall time


def _row(dice_per_case: list[float]) -> dict:
    cases = [{"case": f"c{i}", "classes": {"1": {"Dice": d}}} for i, d in enumerate(dice_per_case)]
    return {"seeds": {"0": {"per_case": cases}}}


def test_each_ablation_is_compared_with_dumm_and_with_the_stock_ensemble():
    results = {key: _row([0.7, 0.7, 0.7]) for key in ("dumm", "pseudo_label", "dumm_nosus")}
    results["dumm_nopum"] = _row([0.8, 0.8, 0.8])
    comparisons = compare_rows(results, COMPARISONS)
    assert set(comparisons) == {"pseudo_label_vs_dumm", "dumm_nosus_vs_dumm", "dumm_nopum_vs_dumm"}
    assert round(comparisons["dumm_nopum_vs_dumm"]["mean_diff"], 6) == 0.1
    results["stock_ensemble"] = _row([0.75, 0.75, 0.75])
    assert round(compare_rows(results, COMPARISONS)["dumm_nopum_vs_stock_ensemble"]["mean_diff"], 6) == 0.05


def test_no_mask_is_compared_with_the_one_teacher_run_without_pum():
    """DUMM without PUM drops the mask and four of the five teachers; DUMM without the mask keeps the teachers."""
    results = {"dumm_nopum": _row([0.8, 0.8, 0.8]), "no_mask": _row([0.7, 0.7, 0.7])}
    assert round(compare_rows(results, COMPARISONS)["no_mask_vs_dumm_nopum"]["mean_diff"], 6) == -0.1


def test_no_mask_is_compared_with_every_stock_row():
    results = {"stock": _row([0.6] * 3), "stock_2x": _row([0.65] * 3), "stock_ensemble": _row([0.62] * 3),
               "stock_2x_ensemble": _row([0.68] * 3), "no_mask": _row([0.7] * 3), "no_mask_ensemble": _row([0.72] * 3)}
    comparisons = compare_rows(results, COMPARISONS)
    assert set(comparisons) == {"stock_2x_vs_stock", "no_mask_vs_stock_ensemble", "no_mask_vs_stock",
                                "no_mask_vs_stock_2x", "no_mask_ensemble_vs_stock_ensemble",
                                "no_mask_ensemble_vs_stock_2x_ensemble", "stock_2x_ensemble_vs_stock_ensemble"}
    assert round(comparisons["no_mask_ensemble_vs_stock_ensemble"]["mean_diff"], 6) == 0.1
    assert round(comparisons["no_mask_ensemble_vs_stock_2x_ensemble"]["mean_diff"], 6) == 0.04


def test_the_recommended_trainer_is_compared_with_the_stock_rows_the_paper_and_no_mask():
    results = {"stock": _row([0.6] * 3), "stock_2x": _row([0.65] * 3), "stock_ensemble": _row([0.62] * 3),
               "stock_2x_ensemble": _row([0.68] * 3), "no_mask": _row([0.7] * 3), "no_mask_ensemble": _row([0.72] * 3),
               "dumm": _row([0.73] * 3), "dumm_ensemble": _row([0.75] * 3), "dumm_paper": _row([0.69] * 3)}
    comparisons = compare_rows(results, COMPARISONS)
    assert round(comparisons["dumm_vs_no_mask"]["mean_diff"], 6) == 0.03
    assert round(comparisons["dumm_vs_dumm_paper"]["mean_diff"], 6) == 0.04
    assert round(comparisons["dumm_ensemble_vs_no_mask_ensemble"]["mean_diff"], 6) == 0.03
    assert round(comparisons["dumm_ensemble_vs_stock_2x_ensemble"]["mean_diff"], 6) == 0.07
    assert {"dumm_vs_stock", "dumm_vs_stock_2x", "dumm_vs_stock_ensemble", "dumm_vs_stock_2x_ensemble",
            "dumm_vs_no_mask_ensemble", "dumm_ensemble_vs_stock_ensemble"} <= set(comparisons)
    # the paper's setting against the stock bar only; the ablations' comparisons with DUMM are DUMM's
    assert {key for key in comparisons if key.startswith("dumm_paper")} == {"dumm_paper_vs_stock_ensemble",
                                                                           "dumm_paper_vs_stock"}
    assert not any(key.startswith("no_mask") and key.endswith("_vs_dumm") for key in comparisons)


def test_the_cost_matched_stock_ensemble_is_five_stock_folds_at_twice_the_iterations_beside_the_teachers():
    args = _args(["stock_ensemble", "stock_2x", "stock_2x_ensemble"], [0, 1])
    stock, students = training_stages(available_rows(args), args)
    doubled = [(m.fold, m.seed, m.root) for m in stock if m.trainer == "nnUNetTrainerStock_2000it"]
    # the ensemble's fold 0 is stock_2x's seed-0 model, trained once
    assert sorted(doubled) == sorted([*((fold, 0, "nnUNet_results") for fold in range(5)),
                                      (0, 1, "nnUNet_results_stock_seed1")])
    assert students == []


def test_the_upper_bound_is_compared_with_the_stock_ensemble_and_dumm_with_it():
    results = {"stock_ensemble": _row([0.6] * 3), "dumm": _row([0.7] * 3), "oracle": _row([0.8] * 3)}
    comparisons = compare_rows(results, COMPARISONS)
    assert set(comparisons) == {"dumm_vs_stock_ensemble", "oracle_vs_stock_ensemble", "dumm_vs_oracle"}
    assert round(comparisons["dumm_vs_oracle"]["mean_diff"], 6) == -0.1
    assert comparisons["oracle_vs_stock_ensemble"]["significant"]


def test_another_proxy_budget_trains_every_arm_on_it_and_reports_apart_from_the_default():
    from benchmarks.rows import preset_label

    args = _args(["stock", "stock_ensemble", "stock_2x", "dumm"], [0])
    args.dataset = "acdc"
    default_stock, default_students = training_stages(available_rows(args), args)
    assert {m.trainer for m in default_stock} == {"nnUNetTrainerStock_2000it", "nnUNetTrainerStock_4000it"}
    assert preset_label(args) == "proxy"
    args.proxy_budget = "4000it"
    stock, students = training_stages(available_rows(args), args)
    # the teachers and fold 0 at 4000, the sample-count row at twice that: the student's teachers move too
    assert [m.trainer for m in stock] == ["nnUNetTrainerStock_4000it"] * 5 + ["nnUNetTrainerStock_8000it"]
    assert [m.trainer for m in students] == ["nnUNetTrainerDUMM_4000it"]
    assert preset_label(args) == "proxy4000it"  # its report and summary entry do not replace the default's
    args.proxy_budget = "2000it"
    assert preset_label(args) == "proxy"
    args.plans = "nnUNetPlans_features0.5"  # a smaller network for every arm (--network-scale 0.5)
    assert preset_label(args) == "proxy2000it_features0.5"
    args.proxy_budget = "4000it"
    assert preset_label(args) == "proxy4000it_features0.5"


def test_proxy_budget_is_refused_without_the_proxy_preset_or_in_another_form(tmp_path, capsys):
    from benchmarks.run_quality import main

    for argv in (["--preset", "cpu", "--proxy-budget", "4000it"], ["--proxy-budget", "4000"]):
        with pytest.raises(SystemExit):
            main(["acdc", "--work-dir", str(tmp_path), *argv])
        assert "--proxy-budget takes an iteration budget" in capsys.readouterr().err


def test_another_budget_predicts_into_its_own_folder_and_foreign_predictions_are_refused(tmp_path):
    from benchmarks.rows import ROWS_BY_KEY
    from benchmarks.run_quality import check_predicted_by, prediction_key

    args = _args(["stock"], [0])
    args.evaluate = "test"
    assert prediction_key(args, ROWS_BY_KEY["stock"]) == "test_stock"  # the default's name: old work dirs resume
    args.proxy_budget = "4000it"
    assert prediction_key(args, ROWS_BY_KEY["stock"]) == "test_stock_proxy4000it"
    output = tmp_path / "test_stock" / "seed0"
    check_predicted_by(output, tmp_path / "a", (0,))
    check_predicted_by(output, tmp_path / "a", (0,))  # the same model again: fine
    with pytest.raises(SystemExit, match="holds predictions of"):
        check_predicted_by(output, tmp_path / "b", (0,))


def test_predictions_of_another_checkpoint_of_the_same_model_folder_are_made_again(tmp_path):
    from benchmarks.run_quality import check_predicted_by

    model_folder, output = tmp_path / "nnUNetTrainerDUMM_1000it__nnUNetPlans__2d", tmp_path / "test_dumm" / "seed0"
    checkpoint = model_folder / "fold_0" / "checkpoint_final.pth"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"the paper's setting")
    check_predicted_by(output, model_folder, (0,))
    (output / "summary.json").write_text("{}")  # predicted and evaluated
    check_predicted_by(output, model_folder, (0,))
    assert (output / "summary.json").is_file()  # the same checkpoint: kept
    checkpoint.write_bytes(b"the recommended method, trained anew")
    os.utime(checkpoint, ns=(1, 1))
    check_predicted_by(output, model_folder, (0,))
    assert not (output / "summary.json").exists()  # another checkpoint: predicted again
    assert json.loads((output / "predicted_by.json").read_text())["checkpoints"] == [[36, 1]]


def test_predictions_recorded_before_checkpoints_were_are_made_again(tmp_path):
    """A work dir from before 0.2.0: test_dumm/ holds the paper's setting's predictions, made by the model folder
    that the recommended method's row names today; the record cannot tell which checkpoint made them."""
    from benchmarks.run_quality import check_predicted_by

    model_folder, output = tmp_path / "nnUNetTrainerDUMM_1000it__nnUNetPlans__2d", tmp_path / "test_dumm" / "seed0"
    output.mkdir(parents=True)
    (output / "predicted_by.json").write_text(json.dumps({"model_folder": str(model_folder.resolve()), "folds": [0]}))
    (output / "case_000.png").write_bytes(b"")
    (output / "summary.json").write_text("{}")
    check_predicted_by(output, model_folder, (0,))
    assert sorted(p.name for p in output.iterdir()) == ["predicted_by.json"]
    with pytest.raises(SystemExit, match="holds predictions of"):  # another model folder's: refused, as before
        check_predicted_by(output, tmp_path / "nnUNetTrainerDUMM_paper_1000it__nnUNetPlans__2d", (0,))


def _fold_with_config(work_dir, folder: str, trainer: str):
    from benchmarks.rows import Model
    from benchmarks.run_quality import model_fold_folder

    model = Model(folder, 0, 0, "nnUNet_results")
    fold = model_fold_folder(work_dir, "Dataset941_ISIC_10pct_64px", model)
    fold.mkdir(parents=True)
    trainer_class(trainer).dumm_config.save(fold / "dumm_config.json")
    return model


def test_a_model_trained_as_the_papers_setting_is_not_reused_as_the_recommended_one(tmp_path):
    """A work dir from before 0.2.0: nnUNetTrainerDUMM_<budget> there holds the paper's fixed mask."""
    from benchmarks.run_quality import check_trained_as

    dataset = "Dataset941_ISIC_10pct_64px"
    old = _fold_with_config(tmp_path, "nnUNetTrainerDUMM_1000it", "nnUNetTrainerDUMM_paper_1000it")
    with pytest.raises(SystemExit, match=r"(?s)nnUNetTrainerDUMM_1000it__nnUNetPlans__2d/fold_0 \(differs in "
                                         r"pixel_threshold_mode\).*nnUNetTrainerDUMM_paper_<budget>"):
        check_trained_as(tmp_path, dataset, [old])
    # moved to the paper's preset as the message says, the dumm_paper row reuses it; the recommended one trains anew
    moved = tmp_path / "nnUNet_results" / dataset / "nnUNetTrainerDUMM_paper_1000it__nnUNetPlans__2d"
    (tmp_path / "nnUNet_results" / dataset / "nnUNetTrainerDUMM_1000it__nnUNetPlans__2d").rename(moved)
    check_trained_as(tmp_path, dataset, [old, replace(old, trainer="nnUNetTrainerDUMM_paper_1000it")])
    recommended = _fold_with_config(tmp_path / "new", "nnUNetTrainerDUMM_1000it", "nnUNetTrainerDUMM_1000it")
    check_trained_as(tmp_path / "new", dataset, [recommended])


def test_a_model_trained_with_a_removed_lever_is_not_reused(tmp_path):
    from benchmarks.run_quality import check_trained_as

    model = _fold_with_config(tmp_path, "nnUNetTrainerDUMM_1000it", "nnUNetTrainerDUMM_1000it")
    config_file = tmp_path / "nnUNet_results" / "Dataset941_ISIC_10pct_64px" / \
        "nnUNetTrainerDUMM_1000it__nnUNetPlans__2d" / "fold_0" / "dumm_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "copy_paste": True}))
    with pytest.raises(SystemExit, match="this config uses copy_paste=True"):
        check_trained_as(tmp_path, "Dataset941_ISIC_10pct_64px", [model])

