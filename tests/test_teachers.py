"""Which teacher checkpoints a student uses: every fold on disk by default, and for leak-free validation only the
folds that never trained on the student fold's validation cases (from the dataset's ``splits_final.json``)."""

from __future__ import annotations

import json

import pytest

from nnunet_dumm.config import TeacherSpec
from nnunet_dumm.pseudo_labels import TeacherModelsMissing, resolve_teacher_folds

DATASET = "Dataset990_Teachers"
CASES = [f"case_{i}" for i in range(10)]


@pytest.fixture
def teachers(tmp_path, monkeypatch):
    """A model folder with folds 0-4, 7 and all trained (a checkpoint each), fold 5 without one, and the
    dataset's 5-fold splits."""
    import nnunetv2.paths

    preprocessed = tmp_path / "preprocessed" / DATASET
    preprocessed.mkdir(parents=True)
    splits = [{"train": [c for j, c in enumerate(CASES) if j // 2 != k], "val": CASES[2 * k:2 * k + 2]}
              for k in range(5)]
    (preprocessed / "splits_final.json").write_text(json.dumps(splits))
    monkeypatch.setattr(nnunetv2.paths, "nnUNet_preprocessed", str(tmp_path / "preprocessed"))
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
