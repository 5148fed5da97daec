"""ACDC converter on tiny files written in both source layouts (official release and SSL4MIS h5)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import SimpleITK as sitk

from dataset_conversion import acdc, toy_data
from dataset_conversion.common import ConversionError

SHAPE = toy_data.ACDC_SHAPE
SPACING = toy_data.ACDC_SPACING
H5_VAL = toy_data.ACDC_H5_VAL
make_official = toy_data.make_acdc_official
make_h5 = toy_data.make_acdc_h5
_write_nifti = toy_data.write_nifti


def run(source: Path, out: Path, *extra: str) -> Path:
    """Run the converter's main() into ``out``; returns the dataset folder."""
    argv = [str(source), "-d", "901", "--name", "T", "--raw-root", str(out / "raw")]
    argv += ["--preprocessed-root", str(out / "pre"), *extra]
    assert acdc.main(argv) == 0
    return out / "raw" / "Dataset901_T"


def convert(source: Path, out: Path, *extra: str) -> Path:
    """Like ``run`` but through convert_acdc, so ConversionError propagates to pytest.raises."""
    argv = [str(source), "-d", "901", "--name", "T", "--raw-root", str(out / "raw")]
    argv += ["--preprocessed-root", str(out / "pre"), *extra]
    return acdc.convert_acdc(acdc.build_parser().parse_args(argv))


def ids(folder: Path, with_channel: bool = True) -> list[str]:
    suffix = "_0000.nii.gz" if with_channel else ".nii.gz"
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))


def test_ssl4mis_lists():
    assert len(acdc.SSL4MIS_TRAIN_PATIENTS) == 70 and len(set(acdc.SSL4MIS_TRAIN_PATIENTS)) == 70
    assert acdc.SSL4MIS_TRAIN_PATIENTS[:7] == tuple(
        f"patient{i:03d}" for i in (99, 38, 50, 100, 58, 21, 49)
    )  # the 7-patient budget of the benchmark
    assert len(acdc.SSL4MIS_VAL_PATIENTS) == 10 and len(acdc.SSL4MIS_TEST_PATIENTS) == 20
    everything = set(acdc.SSL4MIS_TRAIN_PATIENTS) | set(acdc.SSL4MIS_VAL_PATIENTS) | set(acdc.SSL4MIS_TEST_PATIENTS)
    assert everything == {f"patient{i:03d}" for i in range(1, 101)}


def test_official_release_split(tmp_path):
    source = make_official(tmp_path / "src", train=[1, 2, 3, 4, 5, 6], test=[101, 102])
    folder = run(source, tmp_path / "out", "--split", "release", "--labeled-patients", "2")

    # SSL4MIS order among patients 1-6: 004, 006, 005, 003, then 001, 002
    assert ids(folder / "imagesTr") == ["patient004_frame01", "patient004_frame09", "patient006_frame01",
                                        "patient006_frame11"]  # fmt: skip
    assert ids(folder / "labelsTr", with_channel=False) == ids(folder / "imagesTr")
    assert len(ids(folder / "imagesUnlabeled")) == 8
    assert ids(folder / "labelsUnlabeled", with_channel=False) == ids(folder / "imagesUnlabeled")
    assert len(ids(folder / "imagesTs")) == 4 and len(ids(folder / "labelsTs", with_channel=False)) == 4
    assert not (folder / "imagesVal").exists()

    image = sitk.ReadImage(str(folder / "imagesTr" / "patient004_frame01_0000.nii.gz"))
    assert image.GetSpacing() == pytest.approx(SPACING)
    dataset_json = json.loads((folder / "dataset.json").read_text())
    assert dataset_json["numTraining"] == 4 and dataset_json["file_ending"] == ".nii.gz"
    assert dataset_json["labels"] == {"background": 0, "RV": 1, "Myo": 2, "LV": 3}

    record = json.loads((folder / "split.json").read_text())
    assert record["counts"] == {"labeled": 4, "unlabeled": 8, "test": 4}
    assert record["groups"]["labeled"] == ["patient004", "patient006"]
    assert record["selection"]["method"] == "first_n_in_order" and record["arguments"]["labeled_patients"] == 2
    assert record["source"] == str(source.resolve())

    splits = json.loads((tmp_path / "out" / "pre" / "Dataset901_T" / "splits_final.json").read_text())
    assert len(splits) == 2  # one fold per labeled patient when there are fewer than 5
    for fold in splits:
        assert {c[:10] for c in fold["val"]}.isdisjoint({c[:10] for c in fold["train"]})
        assert len(fold["val"]) == 2


def test_official_ssl4mis_split_and_grouped_folds(tmp_path):
    source = make_official(tmp_path / "src", train=list(range(1, 101)), shape=(1, 4, 4))
    folder = run(source, tmp_path / "out", "--labeled-patients", "14", "-np", "1")
    record = json.loads((folder / "split.json").read_text())
    assert record["counts"] == {"labeled": 28, "unlabeled": 112, "test": 40, "validation": 20}
    assert record["groups"]["labeled"] == list(acdc.SSL4MIS_TRAIN_PATIENTS[:14])
    assert set(record["groups"]["test"]) == set(acdc.SSL4MIS_TEST_PATIENTS)
    assert len(ids(folder / "imagesVal")) == 20 and len(ids(folder / "labelsVal", with_channel=False)) == 20

    splits = json.loads((tmp_path / "out" / "pre" / "Dataset901_T" / "splits_final.json").read_text())
    assert len(splits) == 5
    assert sorted(c for fold in splits for c in fold["val"]) == sorted(record["labeled"])
    for fold in splits:
        assert {c[:10] for c in fold["val"]}.isdisjoint({c[:10] for c in fold["train"]})


def test_official_explicit_list(tmp_path):
    source = make_official(tmp_path / "src", train=[1, 2, 3], test=[])
    lst = tmp_path / "labeled.txt"
    lst.write_text("patient002_frame01\npatient002_frame07\n")
    folder = run(source, tmp_path / "out", "--split", "release", "--labeled-list", str(lst))
    assert ids(folder / "imagesTr") == ["patient002_frame01", "patient002_frame07"]
    assert not (tmp_path / "out" / "pre" / "Dataset901_T" / "splits_final.json").exists()  # 1 patient: no folds
    with pytest.raises(ConversionError, match="patient077"):
        convert(source, tmp_path / "out2", "--split", "release", "--labeled-list", "patient077")


def test_h5_layout(tmp_path):
    source = make_h5(tmp_path / "src")
    folder = run(source, tmp_path / "out", "--labeled-patients", "2")
    assert ids(folder / "imagesTr") == ["patient038_frame01", "patient038_frame02", "patient099_frame01",
                                        "patient099_frame02"]  # fmt: skip
    assert len(ids(folder / "imagesUnlabeled")) == 4 and len(ids(folder / "labelsUnlabeled", False)) == 4
    assert ids(folder / "imagesTs") == sorted(f"{p}_{f}" for p in H5_VAL for f in ("frame01", "frame02"))

    image = sitk.ReadImage(str(folder / "imagesTr" / "patient099_frame01_0000.nii.gz"))
    assert image.GetSpacing() == pytest.approx((1.0, 1.0, 10.0))
    array = sitk.GetArrayFromImage(image)
    assert array.shape == (11, 12, 10)
    np.testing.assert_array_equal(np.floor(array[:, 0, 0]), np.arange(1, 12))  # slice_10 after slice_9, not slice_1
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "patient099_frame01.nii.gz")))
    assert label.shape == array.shape and set(np.unique(label)) <= {0, 1, 2, 3}

    dataset_json = json.loads((folder / "dataset.json").read_text())
    assert "spacing_assumption" in dataset_json and "10.0" in dataset_json["description"]
    record = json.loads((folder / "split.json").read_text())
    assert record["selection"]["order_source"] == "train_slices.list"
    assert record["slices"] == {"labeled": 11 + 3 * 3, "unlabeled": 4 * 3, "test": 4 * 4}
    assert "spacing_assumption" in record


def test_h5_downscale(tmp_path):
    source = make_h5(tmp_path / "src", long_frame=3)
    folder = run(source, tmp_path / "out", "--labeled-patients", "1", "--downscale", "2")
    image = sitk.ReadImage(str(folder / "imagesTr" / "patient099_frame01_0000.nii.gz"))
    label = sitk.ReadImage(str(folder / "labelsTr" / "patient099_frame01.nii.gz"))
    assert image.GetSize() == label.GetSize() == (5, 6, 3)
    assert image.GetSpacing() == pytest.approx((2.0, 2.0, 10.0))
    assert set(np.unique(sitk.GetArrayFromImage(label))) <= {0, 1, 2, 3}
    test_image = sitk.ReadImage(str(folder / "imagesTs" / "patient028_frame01_0000.nii.gz"))
    assert test_image.GetSize() == (5, 6, 4)


def test_overwrite_and_id_clash(tmp_path, capsys):
    source = make_h5(tmp_path / "src", long_frame=3)
    run(source, tmp_path / "out", "--labeled-patients", "1")
    argv = [str(source), "-d", "901", "--name", "T", "--raw-root", str(tmp_path / "out" / "raw")]
    argv += ["--preprocessed-root", str(tmp_path / "out" / "pre"), "--labeled-patients", "2"]
    assert acdc.main(argv) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert acdc.main([*argv, "--overwrite"]) == 0
    assert len(ids(tmp_path / "out" / "raw" / "Dataset901_T" / "imagesTr")) == 4
    argv[argv.index("T")] = "Other"
    assert acdc.main(argv) == 1
    assert "dataset id 901 is already used" in capsys.readouterr().err


def test_default_roots_from_env(tmp_path, monkeypatch):
    source = make_h5(tmp_path / "src", long_frame=3)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "envraw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "envpre"))
    assert acdc.main([str(source), "-d", "902", "--labeled-patients", "2"]) == 0
    assert (tmp_path / "envraw" / "Dataset902_ACDCh5_2lab" / "dataset.json").is_file()
    assert (tmp_path / "envpre" / "Dataset902_ACDCh5_2lab" / "splits_final.json").is_file()


# ---------------------------------------------------------------------------------------------------------------------
# bad inputs: the error names the file
# ---------------------------------------------------------------------------------------------------------------------


def test_error_missing_label(tmp_path):
    source = make_official(tmp_path / "src", train=[1, 2])
    gt = source / "training" / "patient002" / "patient002_frame01_gt.nii.gz"
    gt.unlink()
    with pytest.raises(ConversionError, match=f"has no label.*{gt}"):
        convert(source, tmp_path / "out", "--split", "release", "--labeled-patients", "1")


def test_error_label_values(tmp_path):
    source = make_official(tmp_path / "src", train=[1])
    gt = source / "training" / "patient001" / "patient001_frame01_gt.nii.gz"
    _write_nifti(gt, np.full(SHAPE, 5, dtype=np.uint8))
    with pytest.raises(ConversionError, match=rf"{gt}: label values \[5\] outside"):
        convert(source, tmp_path / "out", "--split", "release", "--labeled-patients", "1")
    assert not (tmp_path / "out" / "raw" / "Dataset901_T").exists()  # half-written output is removed


def test_error_shape_mismatch(tmp_path):
    source = make_official(tmp_path / "src", train=[1])
    gt = source / "training" / "patient001" / "patient001_frame01_gt.nii.gz"
    _write_nifti(gt, np.zeros((3, 8, 7), dtype=np.uint8))
    with pytest.raises(ConversionError, match=f"shape mismatch.*{gt}"):
        convert(source, tmp_path / "out", "--split", "release", "--labeled-patients", "1")


def test_error_unreadable_and_missing(tmp_path):
    source = make_official(tmp_path / "src", train=[1, 2])
    image = source / "training" / "patient002" / "patient002_frame01.nii.gz"
    image.write_bytes(b"garbage")
    with pytest.raises(ConversionError, match=f"cannot read {image}"):
        convert(source, tmp_path / "out", "--split", "release", "--labeled-patients", "1")
    image.unlink()
    with pytest.raises(ConversionError, match=f"missing image: {image}"):
        convert(source, tmp_path / "out2", "--split", "release", "--labeled-patients", "1")
    (source / "training" / "patient001" / "Info.cfg").write_text("ED: 1\n")
    with pytest.raises(ConversionError, match="Info.cfg: no integer 'ES:' line"):
        convert(source, tmp_path / "out3", "--split", "release", "--labeled-patients", "1")
    # SSL4MIS split needs all 100 patients of the release
    with pytest.raises(ConversionError, match="missing patient folder: .*patient099"):
        convert(source, tmp_path / "out4", "--labeled-patients", "1")


def test_error_h5_inputs(tmp_path):
    source = make_h5(tmp_path / "src", long_frame=3)
    (source / "slices" / "patient050_frame02_slice_2.h5").unlink()
    with pytest.raises(
        ConversionError, match="missing slice listed in train_slices.list: .*patient050_frame02_slice_2"
    ):
        convert(source, tmp_path / "out", "--labeled-patients", "1")
    (source / "train_slices.list").unlink()  # without the list the gap in Z is found from the file names
    with pytest.raises(ConversionError, match="missing slice file: .*patient050_frame02_slice_2.h5"):
        convert(source, tmp_path / "out", "--labeled-patients", "1")

    source = make_h5(tmp_path / "src2", long_frame=3)
    bad = source / "slices" / "patient038_frame01_slice_2.h5"
    with h5py.File(bad, "w") as f:
        f["image"] = np.zeros((12, 10), np.float32)
        f["label"] = np.zeros((12, 9), np.uint8)
    with pytest.raises(ConversionError, match=f"shape mismatch.*{bad}"):
        convert(source, tmp_path / "out2", "--labeled-patients", "1")
    with h5py.File(bad, "w") as f:
        f["image"] = np.zeros((12, 10), np.float32)
    with pytest.raises(ConversionError, match=f"{bad}: needs 'image' and 'label'"):
        convert(source, tmp_path / "out3", "--labeled-patients", "1")
    with h5py.File(bad, "w") as f:
        f["image"] = np.zeros((12, 10), np.float32)
        f["label"] = np.full((12, 10), 4, np.uint8)
    with pytest.raises(ConversionError, match=r"patient038_frame01_slice_\*.h5: label values \[4\]"):
        convert(source, tmp_path / "out4", "--labeled-patients", "1")
    bad.write_bytes(b"nope")
    with pytest.raises(ConversionError, match=f"cannot read {bad}"):
        convert(source, tmp_path / "out5", "--labeled-patients", "1")
    with pytest.raises(ConversionError, match="--downscale only applies to the h5 layout"):
        convert(make_official(tmp_path / "src3", train=[1]), tmp_path / "o", "--downscale", "2",
                "--labeled-patients", "1")  # fmt: skip
