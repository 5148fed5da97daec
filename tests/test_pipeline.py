"""End to end: the demo pipeline trains teachers and a DUMM student; stock nnU-Net commands use the result."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY_SPEC, run_console_script, user_env


def test_demo_reports_both_arms(pipeline):
    summaries = pipeline["summaries"]
    assert len(summaries) == 3  # stock fold 0, the stock ensemble of the teachers, DUMM
    for summary in summaries.values():
        assert set(summary["mean"]) == {"1", "2", "3"}
        assert 0.0 <= summary["foreground_mean"]["Dice"] <= 1.0
    # each model's predictions in a folder of its own: a rerun with another student must not reuse these
    assert {p.name for p in (pipeline["root"] / "predictions").iterdir()} == {
        "nnUNetTrainerStock_test_fold0", "nnUNetTrainerStock_test_folds01", "nnUNetTrainerDUMM_test_fold0"}


def test_student_folder_is_an_nnunet_model_folder(pipeline):
    fold = pipeline["student"] / "fold_0"
    for name in ("checkpoint_final.pth", "training_log_"):
        assert any(p.name.startswith(name) for p in fold.iterdir()), name
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        assert (pipeline["student"] / name).is_file()
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    # stock nnU-Net's class builds the student's network: plain nnU-Net predicts with it (see test_deploy)
    assert checkpoint["trainer_name"] == "nnUNetTrainer"
    assert checkpoint["dumm_trainer_name"] == "nnUNetTrainerDUMM_test"
    assert set(checkpoint["init_args"]) == {"plans", "configuration", "fold", "dataset_json", "device"}


def test_config_metrics_and_ranking_are_written(pipeline):
    from benchmarks.trainers import BUDGETS
    from nnunet_dumm.config import DUMMConfig

    fold = pipeline["student"] / "fold_0"
    config = DUMMConfig.load(fold / "dumm_config.json")
    assert config.teachers[0].trainer == "nnUNetTrainerStock_test"
    records = [json.loads(line) for line in (fold / "dumm_metrics.jsonl").read_text().splitlines()]
    num_epochs = BUDGETS["test"].num_epochs
    assert [r["epoch"] for r in records] == list(range(num_epochs))
    # default SUS: the reliable half for the first half of the epochs, then all cases
    assert [r["round"] for r in records] == [1] * (num_epochs // 2) + [2] * (num_epochs - num_epochs // 2)
    assert [r["selected_cases"] for r in records] == [5] * (num_epochs // 2) + [10] * (num_epochs - num_epochs // 2)
    for r in records:
        assert np.isfinite(r["sup_loss"]) and np.isfinite(r["unsup_loss"])
        assert 0 <= r["batch_kept_fraction"] <= 1
    ranking = json.loads((fold / "dumm_ranking.json").read_text())["ranking"]
    assert len(ranking) == TINY_SPEC.num_unlabeled
    values = [r[f"U_{config.sample_uncertainty.value}"] for r in ranking]
    assert values == sorted(values)


def test_teacher_pass_is_cached_and_round_two_has_its_own_pass(pipeline):
    cache = pipeline["teacher_cache"]
    assert cache.parent == pipeline["preprocessed"] / "dumm_pseudo_labels"  # shared by the dataset's students
    assert len(list(cache.glob("*.pkl"))) == TINY_SPEC.num_unlabeled
    sources = json.loads((cache / "sources.json").read_text())
    assert sorted(m["fold"] for m in sources["models"]) == ["0", "1"]
    # the pixel measure the student reads, and the mean softmax round 2 adds the student to
    assert sources["contents"] == {"pixel_measures": ["entropy"], "means": ["p"]}
    (round2,) = (pipeline["student"] / "fold_0" / "dumm_pseudo_labels").glob("round2_*")
    assert len(list(round2.glob("*.pkl"))) == TINY_SPEC.num_unlabeled
    assert "student_weights_sha256" in json.loads((round2 / "sources.json").read_text())


def test_stock_predict_and_ensemble_work_on_the_student(pipeline, tmp_path):
    raw = pipeline["raw"]
    for trainer in ("nnUNetTrainerDUMM_test", "nnUNetTrainerStock_test"):
        result = run_console_script(["nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(tmp_path / trainer),
                                 "-d", "950", "-c", "2d", "-tr", trainer, "-f", "0", "-device", "cpu",
                                 "--save_probabilities", "-npp", "1", "-nps", "1"])
        assert result.returncode == 0, result.stderr[-3000:]
        assert len(list((tmp_path / trainer).glob("*.nii.gz"))) == TINY_SPEC.num_test
    result = run_console_script(["nnUNetv2_ensemble", "-i", str(tmp_path / "nnUNetTrainerDUMM_test"),
                             str(tmp_path / "nnUNetTrainerStock_test"), "-o", str(tmp_path / "ensemble"), "-np", "1"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "ensemble").glob("*.nii.gz"))) == TINY_SPEC.num_test


def test_resume_after_crash_in_round_two_pass(pipeline, monkeypatch):
    """A crash during the round-2 pseudo-label pass resumes with --c in round 2 from the transition checkpoint."""
    from nnunetv2.run.run_training import run_training

    import nnunet_dumm.trainers.dumm as dumm

    real_pass = dumm.generate_pseudo_labels

    def crash_in_round_two(members, cases, load_data, cache, *args, **kwargs):
        if cache.folder.name.startswith("round2_"):
            raise KeyboardInterrupt("simulated kill during the round-2 pass")
        return real_pass(members, cases, load_data, cache, *args, **kwargs)

    monkeypatch.setattr(dumm, "generate_pseudo_labels", crash_in_round_two)
    with pytest.raises(KeyboardInterrupt):
        run_training("950", "2d", 1, "nnUNetTrainerDUMM_test", device=torch.device("cpu"))
    fold = pipeline["student"] / "fold_1"
    checkpoint = torch.load(fold / "checkpoint_latest.pth", map_location="cpu", weights_only=False)
    transition_epoch = len([line for line in (fold / "dumm_metrics.jsonl").read_text().splitlines()])
    assert checkpoint["current_epoch"] == transition_epoch

    monkeypatch.setattr(dumm, "generate_pseudo_labels", real_pass)
    run_training("950", "2d", 1, "nnUNetTrainerDUMM_test", continue_training=True, device=torch.device("cpu"))
    records = [json.loads(line) for line in (fold / "dumm_metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(len(records)))
    assert records[transition_epoch]["round"] == 2
    assert (fold / "checkpoint_final.pth").is_file()


def test_resume_from_a_periodic_checkpoint_in_round_two_reuses_the_rounds_labels(pipeline, monkeypatch):
    """nnU-Net's periodic checkpoint_latest.pth written after the round-2 transition holds other weights than the
    student at the transition: the resumed run finds round 2's labels by the transition's record, labelling
    nothing again. (Fold 'all', which the cross-validation test reuses.)"""
    import dataclasses

    from nnunetv2.run.run_training import run_training

    import nnunet_dumm.trainers.dumm as dumm
    from benchmarks.trainers import nnUNetTrainerDUMM_test

    monkeypatch.setattr(nnUNetTrainerDUMM_test, "budget",
                        dataclasses.replace(nnUNetTrainerDUMM_test.budget, save_every=1))
    real_epoch_start = dumm.nnUNetTrainerDUMM.on_train_epoch_start

    def killed_in_the_last_epoch(self):
        if self.current_epoch == self.num_epochs - 1:
            raise KeyboardInterrupt("simulated kill after a periodic checkpoint in round 2")
        real_epoch_start(self)

    monkeypatch.setattr(dumm.nnUNetTrainerDUMM, "on_train_epoch_start", killed_in_the_last_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_training("950", "2d", "all", "nnUNetTrainerDUMM_test", device=torch.device("cpu"))
    fold = pipeline["student"] / "fold_all"
    checkpoint = torch.load(fold / "checkpoint_latest.pth", map_location="cpu", weights_only=False)
    assert checkpoint["current_epoch"] == 3  # written at the end of epoch 2, the first epoch of round 2
    (round2,) = (fold / "dumm_pseudo_labels").glob("round2_*")
    entries = {p.name: p.stat().st_mtime_ns for p in round2.glob("*.pkl")}
    assert len(entries) > 0

    monkeypatch.setattr(dumm.nnUNetTrainerDUMM, "on_train_epoch_start", real_epoch_start)
    run_training("950", "2d", "all", "nnUNetTrainerDUMM_test", continue_training=True, device=torch.device("cpu"))
    assert (fold / "checkpoint_final.pth").is_file()
    assert [p.name for p in (fold / "dumm_pseudo_labels").glob("round2_*")] == [round2.name]
    assert {p.name: p.stat().st_mtime_ns for p in round2.glob("*.pkl")} == entries


def test_resume_with_another_config_is_refused(pipeline, monkeypatch):
    import dataclasses

    from nnunetv2.run.run_training import run_training

    from benchmarks import trainers as variants

    trainer = variants.nnUNetTrainerDUMM_test
    monkeypatch.setattr(trainer, "dumm_config", dataclasses.replace(trainer.dumm_config, pixel_threshold=0.5))
    with pytest.raises(RuntimeError, match="another DUMM config"):
        run_training("950", "2d", 0, "nnUNetTrainerDUMM_test", continue_training=True, device=torch.device("cpu"))


def test_resuming_a_fold_trained_under_the_old_meaning_is_refused_with_what_to_run(pipeline):
    """A fold that nnunet_dumm 0.1 trained as nnUNetTrainerDUMM (the paper's fixed mask) and a user resumes with
    --c under the name's new meaning (the class-quantile mask): refused, naming the change and both ways on."""
    from nnunetv2.run.run_training import run_training

    from tests.test_config import CONFIG_OF_0_1

    fold = pipeline["student"] / "fold_0"
    config_file = fold / "dumm_config.json"
    saved = config_file.read_text()
    legacy = {**CONFIG_OF_0_1, "teachers": [{**CONFIG_OF_0_1["teachers"][0], "trainer": "nnUNetTrainerStock_test"}]}
    config_file.write_text(json.dumps(legacy))
    try:
        with pytest.raises(RuntimeError) as error:
            run_training("950", "2d", 0, "nnUNetTrainerDUMM_test", continue_training=True,
                         device=torch.device("cpu"))
    finally:
        config_file.write_text(saved)
    message = str(error.value)
    assert "pixel_threshold_mode 'fixed' -> 'class_quantile'" in message
    assert "nnunet_dumm 0.2.0" in message
    assert f"rename {pipeline['student']} to nnUNetTrainerDUMM_paper_test__nnUNetPlans__2d" in message
    assert "-tr nnUNetTrainerDUMM_paper_test -p nnUNetPlans --c" in message
    assert f"delete {fold}" in message


def test_diagnostics_against_true_labels_are_written(pipeline):
    fold = pipeline["student"] / "fold_0"
    for round_number, num_cases in ((1, TINY_SPEC.num_unlabeled), (2, TINY_SPEC.num_unlabeled)):
        diagnostics = json.loads((fold / f"dumm_diagnostics_round{round_number}.json").read_text())
        assert diagnostics["num_cases"] == num_cases
        assert 0 <= diagnostics["pseudo_label_dice_mean"] <= 1
        # the cache keeps the trainer's pixel measure only; round 2's entries (student added to the teachers' mean
        # softmax) hold the sample measure that needs nothing else
        assert set(diagnostics["pixel_accuracy"]) == {"entropy"}
        spearman = diagnostics["spearman_U_vs_error"]
        assert {m for m, rho in spearman.items() if rho is not None} == \
            ({"dust", "dice", "entropy"} if round_number == 1 else {"entropy"})
        assert set(diagnostics["pseudo_label_dice_per_class"]) == {"myocardium", "blood_pool", "right_ventricle"}
        assert (fold / f"dumm_diagnostics_round{round_number}.png").stat().st_size > 10_000


def test_missing_teachers_stop_with_the_commands_that_train_them(pipeline):
    from nnunet_dumm.config import TeacherSpec
    from nnunet_dumm.teachers import TeacherModelsMissing, resolve_teacher_folds

    with pytest.raises(TeacherModelsMissing) as error:
        resolve_teacher_folds([TeacherSpec(trainer="nnUNetTrainerStock_test")], "Dataset950_DUMMDemo", "nnUNetPlans",
                              "2d", min_models=3)
    message = str(error.value)
    assert "found 2" in message
    for fold in (2, 3, 4):
        assert f"nnUNetv2_train Dataset950_DUMMDemo 2d {fold} -tr nnUNetTrainerStock_test -p nnUNetPlans" in message


def test_a_student_refused_for_missing_teachers_leaves_no_fold_folder(pipeline):
    """nnUNetTrainerDUMM_cpu learns from nnUNetTrainerStock_cpu folds 0-2, none of which is trained here."""
    from nnunetv2.run.run_training import run_training

    from nnunet_dumm.teachers import TeacherModelsMissing

    with pytest.raises(TeacherModelsMissing, match="Dataset950_DUMMDemo 2d 2 -tr nnUNetTrainerStock_cpu"):
        run_training("950", "2d", 0, "nnUNetTrainerDUMM_cpu", device=torch.device("cpu"))
    assert not (pipeline["student"].parent / "nnUNetTrainerDUMM_cpu__nnUNetPlans__2d" / "fold_0").exists()


def test_sharded_killed_and_resumed_pass_equals_the_trainers_pass(pipeline, tmp_path):
    """Two shards, one SIGKILLed mid-pass and rerun, then --merge: the same pseudo-labels and ranking (CPU)."""
    import time

    bin_dir = Path(sys.executable).parent
    cache = pipeline["teacher_cache"]
    reference = tmp_path / "reference"
    shutil.move(cache, reference)
    command = [bin_dir / "nnUNetv2_dumm_pseudo_label", "-d", "950", "-c", "2d", "-tr", "nnUNetTrainerDUMM_test",
               "-device", "cpu", "-num_parts", "2"]
    env = user_env()
    job = subprocess.Popen([*command, "-part_id", "0"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(cache.glob("*.npz")) and time.time() < deadline and job.poll() is None:
        time.sleep(0.05)
    job.kill()  # SIGKILL, as a scheduler would
    job.wait()
    for part in ("0", "1"):
        assert subprocess.run([*command, "-part_id", part], env=env, capture_output=True).returncode == 0
    merged = subprocess.run([*command, "--merge"], env=env, capture_output=True, text=True)
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert not list(cache.glob(".*"))
    # every cache file byte for byte: arrays, the entries' properties and the cache's key record
    assert {p.name: p.read_bytes() for p in reference.iterdir() if p.is_file()} == {
        p.name: p.read_bytes() for p in cache.iterdir() if p.is_file()}
    from nnunet_dumm.cache import PseudoLabelCache
    from nnunet_dumm.selection import rank_cases

    cases = [p.stem for p in cache.glob("*.pkl")]
    ranking = rank_cases(PseudoLabelCache(cache).sample_uncertainty(cases, "dice"))
    trainer_ranking = json.loads((pipeline["student"] / "fold_0" / "dumm_ranking.json").read_text())["ranking"]
    assert ranking == [r["case"] for r in trainer_ranking]


def _set_label(d):
    d["labels"]["extra"] = len(d["labels"])


def _set_spacing(p):
    p["configurations"]["2d"]["spacing"] = [2 * s for s in p["configurations"]["2d"]["spacing"]]


def _set_normalization(p):
    p["configurations"]["2d"]["normalization_schemes"] = ["CTNormalization"]


def _set_intensities(p):
    p["foreground_intensity_properties_per_channel"]["0"]["mean"] += 1.0


@pytest.mark.parametrize("side, mutate, field", [
    ("student_dataset_json", _set_label, "labels"),
    ("teacher_plans", _set_spacing, "spacing"),
    ("teacher_plans", _set_normalization, "normalization_schemes"),
    ("teacher_plans", _set_intensities, "foreground_intensity_properties_per_channel"),
], ids=["labels", "spacing", "normalization", "intensities"])
def test_incompatible_teachers_are_refused_naming_the_folder(pipeline, tmp_path, side, mutate, field):
    """Teachers trained on other labels or another preprocessing would label the student's data wrongly."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_dumm.teachers import TeacherModelsIncompatible, load_teacher_members

    teacher = tmp_path / "teacher"
    (teacher / "fold_0").mkdir(parents=True)
    for name in ("dataset.json", "plans.json", "fold_0/checkpoint_final.pth"):
        (teacher / name).write_bytes((pipeline["stock"] / name).read_bytes())
    dataset_json = json.loads((pipeline["preprocessed"] / "dataset.json").read_text())
    if side == "teacher_plans":
        plans = json.loads((teacher / "plans.json").read_text())
        mutate(plans)
        (teacher / "plans.json").write_text(json.dumps(plans))
    else:  # a teacher whose own files agree with each other, trained on another label set than the student's
        mutate(dataset_json)
    plans_manager = PlansManager(str(pipeline["preprocessed"] / "nnUNetPlans.json"))
    with pytest.raises(TeacherModelsIncompatible, match=field) as error:
        load_teacher_members([(teacher, 0, "checkpoint_final.pth")], plans_manager,
                             plans_manager.get_configuration("2d"), dataset_json, torch.device("cpu"), True)
    assert str(teacher) in str(error.value)


def test_training_a_fold_again_from_scratch_never_reuses_the_earlier_students_labels(pipeline):
    """The round-2 cache is keyed by the student that made it: a fresh run makes its own and removes the old one,
    even one that an interrupted run left incomplete."""
    from nnunetv2.run.run_training import run_training

    trainer = "nnUNetTrainerDUMM_paper_test"
    caches = pipeline["student"].parent / f"{trainer}__nnUNetPlans__2d" / "fold_0" / "dumm_pseudo_labels"
    run_training("950", "2d", 0, trainer, device=torch.device("cpu"))
    (first,) = caches.glob("round2_*")
    for entry in sorted(first.glob("*.pkl"))[:3]:  # as an interrupted pass of that student would have left it
        entry.unlink()
    run_training("950", "2d", 0, trainer, device=torch.device("cpu"))
    (second,) = caches.glob("round2_*")
    assert second.name != first.name
    assert len(list(second.glob("*.pkl"))) == TINY_SPEC.num_unlabeled
