"""Which teacher checkpoints a student uses: every cross-validation fold by default (all of them trained), every
fold on disk of a model folder, and for leak-free validation only the folds that never trained on the student
fold's validation cases (from the dataset's ``splits_final.json``)."""

from __future__ import annotations

import json

import pytest

from nnunet_dumm.config import TeacherSpec
from nnunet_dumm.teachers import TeacherModelsMissing, resolve_teacher_folds

DATASET = "Dataset990_Teachers"
CASES = [f"case_{i}" for i in range(10)]


def _five_fold_splits(tmp_path, monkeypatch) -> list[dict]:
    """nnU-Net's 5-fold splits of CASES, written to a temporary nnUNet_preprocessed."""
    import nnunetv2.paths

    preprocessed = tmp_path / "preprocessed" / DATASET
    preprocessed.mkdir(parents=True)
    splits = [{"train": [c for j, c in enumerate(CASES) if j // 2 != k], "val": CASES[2 * k:2 * k + 2]}
              for k in range(5)]
    (preprocessed / "splits_final.json").write_text(json.dumps(splits))
    monkeypatch.setattr(nnunetv2.paths, "nnUNet_preprocessed", str(tmp_path / "preprocessed"))
    return splits


@pytest.fixture
def teachers(tmp_path, monkeypatch):
    """A model folder with folds 0-4, 7 and all trained (a checkpoint each), fold 5 without one, and the
    dataset's 5-fold splits."""
    splits = _five_fold_splits(tmp_path, monkeypatch)
    folder = tmp_path / "results" / DATASET / "nnUNetTrainer__nnUNetPlans__2d"
    for fold in (0, 1, 2, 3, 4, 5, 7, "all"):
        (folder / f"fold_{fold}").mkdir(parents=True)
        if fold != 5:
            (folder / f"fold_{fold}" / "checkpoint_final.pth").write_bytes(b"")
    return TeacherSpec(folds=None, model_folder=str(folder)), splits


def test_every_fold_on_disk_is_found_including_all_and_folds_beyond_four(teachers):
    spec, _ = teachers
    found = resolve_teacher_folds([spec], DATASET, "nnUNetPlans", "2d", min_models=1)
    assert [fold for _, fold, _ in found] == [0, 1, 2, 3, 4, 7, "all"]


def test_leak_free_keeps_only_the_teacher_of_the_same_fold(teachers):
    spec, splits = teachers
    spec = TeacherSpec(folds=(0, 1, 2, 3, 4), model_folder=spec.model_folder)
    for k in range(5):
        found = resolve_teacher_folds([spec], DATASET, "nnUNetPlans", "2d", min_models=1,
                                      student_validation_cases=set(splits[k]["val"]))
        assert [fold for _, fold, _ in found] == [k]


def test_leak_free_drops_fold_all_and_folds_whose_training_cases_are_unknown(teachers):
    spec, splits = teachers
    found = resolve_teacher_folds([spec], DATASET, "nnUNetPlans", "2d", min_models=1,
                                  student_validation_cases=set(splits[2]["val"]))
    # fold 7 has no split in splits_final.json: it cannot be shown not to have seen the cases
    assert [fold for _, fold, _ in found] == [2]


def test_leak_free_with_too_few_clean_teachers_says_why(teachers):
    spec, splits = teachers
    with pytest.raises(TeacherModelsMissing, match="leak-free validation leaves 1 teacher"):
        resolve_teacher_folds([spec], DATASET, "nnUNetPlans", "2d", min_models=2,
                              student_validation_cases=set(splits[0]["val"]))


@pytest.fixture
def two_of_five(tmp_path, monkeypatch):
    """A stock run (looked up by trainer name) with folds 0 and 1 trained, fold 2 still training (a
    checkpoint_latest.pth only), folds 3 and 4 not started, and the dataset's 5-fold splits."""
    splits = _five_fold_splits(tmp_path, monkeypatch)
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    folder = tmp_path / "results" / DATASET / "nnUNetTrainer__nnUNetPlans__2d"
    for fold, checkpoint in ((0, "checkpoint_final.pth"), (1, "checkpoint_final.pth"), (2, "checkpoint_latest.pth")):
        (folder / f"fold_{fold}").mkdir(parents=True)
        (folder / f"fold_{fold}" / checkpoint).write_bytes(b"")
    return splits


def test_two_of_five_default_teachers_are_refused_with_the_commands_for_the_rest(two_of_five):
    with pytest.raises(TeacherModelsMissing) as error:
        resolve_teacher_folds([TeacherSpec()], DATASET, "nnUNetPlans", "2d", min_models=2)
    message = str(error.value)
    assert "fold 2 (still training, or interrupted: checkpoint_latest.pth only), fold 3, fold 4 have no" in message
    assert "found 2" in message
    for fold in (2, 3, 4):
        assert f"nnUNetv2_train {DATASET} 2d {fold} -tr nnUNetTrainer -p nnUNetPlans" in message
    assert f"nnUNetv2_train {DATASET} 2d 0" not in message


def test_explicit_folds_take_those_on_disk(two_of_five):
    found = resolve_teacher_folds([TeacherSpec(folds=(0, 1, 2))], DATASET, "nnUNetPlans", "2d", min_models=2)
    assert [fold for _, fold, _ in found] == [0, 1]


def test_leak_free_needs_only_the_teacher_of_its_fold(two_of_five):
    splits = two_of_five
    found = resolve_teacher_folds([TeacherSpec()], DATASET, "nnUNetPlans", "2d", min_models=1,
                                  student_validation_cases=set(splits[1]["val"]))
    assert [fold for _, fold, _ in found] == [1]
    with pytest.raises(TeacherModelsMissing, match=f"nnUNetv2_train {DATASET} 2d 3 -tr nnUNetTrainer"):
        resolve_teacher_folds([TeacherSpec()], DATASET, "nnUNetPlans", "2d", min_models=1,
                              student_validation_cases=set(splits[3]["val"]))
