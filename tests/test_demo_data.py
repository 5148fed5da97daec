"""Tests of the synthetic demo dataset generator (layout, content, determinism, nnU-Net acceptance)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_dumm.demo_data import (
    DEMO_LABELS,
    DemoDatasetSpec,
    case_identifier,
    case_rng,
    generate_demo_dataset,
    main,
    synthesize_case,
)

SMALL = DemoDatasetSpec(num_labeled=3, num_unlabeled=5, num_test=4, image_size=32, seed=11)
SUBFOLDERS = {
    "imagesTr": ("labelsTr", "tr", SMALL.num_labeled),
    "imagesUnlabeled": ("labelsUnlabeled", "ul", SMALL.num_unlabeled),
    "imagesTs": ("labelsTs", "ts", SMALL.num_test),
}


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _arrays(folder: Path, sub: str) -> dict[str, np.ndarray]:
    return {p.name: _read(p) for p in sorted((folder / sub).glob("*.nii.gz"))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built once: every read-only test below shares it.
    return generate_demo_dataset(tmp_path_factory.mktemp("raw") / "Dataset950_DUMMDemo", SMALL)


def test_layout_and_counts(dataset: Path) -> None:
    for image_dir, (label_dir, tag, count) in SUBFOLDERS.items():
        images = sorted(p.name for p in (dataset / image_dir).iterdir())
        labels = sorted(p.name for p in (dataset / label_dir).iterdir())
        ids = [case_identifier(tag, i, count) for i in range(count)]
        assert images == [f"{i}_0000.nii.gz" for i in ids]
        assert labels == [f"{i}.nii.gz" for i in ids]
    assert json.loads((dataset / "spec.json").read_text()) == asdict(SMALL)


def test_case_ids_distinct_and_padded() -> None:
    assert case_identifier("tr", 7, 8) == "demo_tr_007"
    assert case_identifier("ul", 12, 1500) == "demo_ul_0012"
    ids = {case_identifier(t, i, 10) for t in ("tr", "ul", "ts") for i in range(10)}
    assert len(ids) == 30


def test_dataset_json(dataset: Path) -> None:
    dj = json.loads((dataset / "dataset.json").read_text())
    assert dj["numTraining"] == SMALL.num_labeled
    assert dj["file_ending"] == ".nii.gz"
    assert dj["labels"] == DEMO_LABELS
    assert list(dj["channel_names"]) == ["0"]
    assert "synthetic" in dj["description"].lower() and "seed=11" in dj["description"]


def test_nnunet_verify_dataset_integrity(dataset: Path) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(dataset), num_processes=1)


def test_every_case_has_all_classes_and_matching_geometry(dataset: Path) -> None:
    for image_dir, (label_dir, _, _) in SUBFOLDERS.items():
        for image_path in sorted((dataset / image_dir).glob("*.nii.gz")):
            label_path = dataset / label_dir / image_path.name.replace("_0000.nii.gz", ".nii.gz")
            image, label = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(label_path))
            assert image.GetDimension() == label.GetDimension() == 2
            assert image.GetSize() == label.GetSize() == (SMALL.image_size, SMALL.image_size)
            assert image.GetSpacing() == label.GetSpacing() == (1.0, 1.0)
            assert image.GetOrigin() == label.GetOrigin()
            assert image.GetDirection() == label.GetDirection()
            image_array, label_array = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
            assert image_array.dtype == np.float32 and label_array.dtype == np.uint8
            assert np.isfinite(image_array).all()
            assert set(np.unique(label_array).tolist()) == {0, 1, 2, 3}


def test_deterministic_and_seed_dependent(dataset: Path, tmp_path: Path) -> None:
    again = generate_demo_dataset(tmp_path / "again", SMALL)
    other = generate_demo_dataset(tmp_path / "other", DemoDatasetSpec(3, 0, 0, image_size=32, seed=12))
    for sub in ("imagesTr", "labelsTr", "imagesUnlabeled", "labelsUnlabeled", "imagesTs", "labelsTs"):
        first, second = _arrays(dataset, sub), _arrays(again, sub)
        assert first.keys() == second.keys()
        assert all(first[k].tobytes() == second[k].tobytes() for k in first)
    original, reseeded = _arrays(dataset, "imagesTr"), _arrays(other, "imagesTr")
    assert all(not np.array_equal(original[k], reseeded[k]) for k in original)


def test_cases_stable_when_other_subsets_change(dataset: Path, tmp_path: Path) -> None:
    # Growing or shrinking one subset must leave the cases of the others (and a prefix of itself) unchanged.
    spec = DemoDatasetSpec(num_labeled=2, num_unlabeled=1, num_test=7, image_size=32, seed=SMALL.seed)
    changed = generate_demo_dataset(tmp_path / "changed", spec)
    for sub in ("imagesTr", "labelsTr", "imagesUnlabeled", "imagesTs", "labelsTs"):
        reference, new = _arrays(dataset, sub), _arrays(changed, sub)
        shared = reference.keys() & new.keys()
        assert shared
        assert all(reference[k].tobytes() == new[k].tobytes() for k in shared)


def test_refuses_existing_folder_without_overwrite(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    small = DemoDatasetSpec(num_labeled=2, num_unlabeled=3, num_test=1, image_size=32)
    generate_demo_dataset(folder, small)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_demo_dataset(folder, small)

    # Overwrite removes stale cases of the previous run but nothing it did not write.
    (folder / "notes.txt").write_text("keep me")
    generate_demo_dataset(
        folder, DemoDatasetSpec(num_labeled=1, num_unlabeled=1, num_test=0, image_size=32), overwrite=True
    )
    assert len(list((folder / "imagesUnlabeled").iterdir())) == 1
    assert not list((folder / "imagesTs").iterdir())
    assert (folder / "notes.txt").read_text() == "keep me"


def test_empty_existing_folder_is_used(tmp_path: Path) -> None:
    generate_demo_dataset(tmp_path, DemoDatasetSpec(1, 0, 0, image_size=32))
    assert (tmp_path / "dataset.json").is_file()


@pytest.mark.parametrize(
    "kwargs", [{"num_labeled": 0}, {"num_unlabeled": -1}, {"num_test": -2}, {"image_size": 16}, {"seed": -1}]
)
def test_spec_validation(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        DemoDatasetSpec(**kwargs)


def test_intensity_alone_is_ambiguous() -> None:
    # The myocardium shares its intensity range with background tissue in most cases, so a threshold cannot
    # segment it and a model has to use shape and context.
    ratios = []
    for i in range(20):
        image, label = synthesize_case(case_rng(0, 0, i), 64)
        lo, hi = np.percentile(image[label == 1], [10, 90])
        background = image[label == 0]
        ratios.append(((background >= lo) & (background <= hi)).sum() / (label == 1).sum())
    assert np.median(ratios) > 1.0


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    args = ["--num-labeled", "2", "--num-unlabeled", "1", "--num-test", "1", "--image-size", "32", "--seed", "3"]
    main(args)
    folder = tmp_path / "Dataset950_DUMMDemo"
    assert str(folder) in capsys.readouterr().out
    assert json.loads((folder / "spec.json").read_text())["seed"] == 3
    with pytest.raises(FileExistsError):
        main(args)
    main([*args, "--overwrite", "-o", str(tmp_path / "explicit")])
    assert (tmp_path / "explicit" / "dataset.json").is_file()


def test_cli_requires_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("nnUNet_raw", raising=False)
    with pytest.raises(SystemExit):
        main(["--num-unlabeled", "0"])


def test_demo_refuses_a_student_without_a_demo_preset_before_writing_anything(tmp_path, capsys):
    from nnunet_dumm.cli import demo_entry

    with pytest.raises(SystemExit):
        demo_entry(["-o", str(tmp_path / "demo"), "-tr", "nnUNetTrainerDUMM_noMask"])
    error = capsys.readouterr().err
    assert "invalid choice: 'nnUNetTrainerDUMM_noMask'" in error and "nnUNetTrainerDUMM_paper" in error
    assert not (tmp_path / "demo").exists()
