"""Generic splitter on a tiny fully labeled nnU-Net raw dataset, shared helpers, and the converters' command lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dataset_conversion import split_dataset
from dataset_conversion.common import ConversionError, budget_count, group_of, grouped_folds, seeded_order
from dataset_conversion.toy_data import write_nifti

REPO = Path(__file__).resolve().parents[1]
SHAPE = (2, 6, 5)


def make_raw_dataset(root: Path, patients: int = 6, test: int = 2) -> Path:
    """Fully labeled two-channel dataset ``Dataset800_Toy``: two frames per patient plus a small test set."""
    folder = root / "Dataset800_Toy"
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    cases = [(f"patient{p:03d}_frame{f:02d}", "Tr") for p in range(1, patients + 1) for f in (1, 9)]
    cases += [(f"case{t:03d}", "Ts") for t in range(test)]
    for case, part in cases:
        for channel in (0, 1):
            write_nifti(folder / f"images{part}" / f"{case}_{channel:04d}.nii.gz", rng.random(SHAPE, dtype=np.float32))
        write_nifti(folder / f"labels{part}" / f"{case}.nii.gz", rng.integers(0, 3, SHAPE, dtype=np.uint8))
    dataset_json = {
        "channel_names": {"0": "T1", "1": "T2"},
        "labels": {"background": 0, "a": 1, "b": 2},
        "numTraining": 2 * patients,
        "file_ending": ".nii.gz",
        "licence": "toy",
        "citation": "nobody",
        "name": "Dataset800_Toy",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    return folder


def convert(source: Path | str, out: Path, *extra: str) -> Path:
    argv = [str(source), "-d", "801", "--name", "S", "--raw-root", str(out / "raw")]
    argv += ["--preprocessed-root", str(out / "pre"), *extra]
    return split_dataset.convert_split(split_dataset.build_parser().parse_args(argv))


def case_ids(folder: Path) -> list[str]:
    return sorted({p.name[: -len("_0000.nii.gz")] for p in folder.glob("*_0000.nii.gz")})


def test_grouped_split(tmp_path):
    source = make_raw_dataset(tmp_path / "raw")
    folder = convert(source, tmp_path / "out", "--labeled-count", "2", "--group-pattern", r"^(patient\d+)")
    labeled = case_ids(folder / "imagesTr")
    assert len(labeled) == 4 and len({c[:10] for c in labeled}) == 2  # both frames of 2 patients
    assert len(list((folder / "imagesTr").glob("*_0001.nii.gz"))) == 4  # second channel copied too
    unlabeled = case_ids(folder / "imagesUnlabeled")
    assert len(unlabeled) == 8 and {c[:10] for c in unlabeled}.isdisjoint({c[:10] for c in labeled})
    assert sorted(p.name for p in (folder / "labelsUnlabeled").iterdir()) == [f"{c}.nii.gz" for c in unlabeled]
    assert case_ids(folder / "imagesTs") == ["case000", "case001"] and len(list((folder / "labelsTs").iterdir())) == 2

    dataset_json = json.loads((folder / "dataset.json").read_text())
    assert dataset_json["numTraining"] == 4 and dataset_json["numUnlabeled"] == 8
    assert dataset_json["channel_names"] == {"0": "T1", "1": "T2"} and dataset_json["citation"] == "nobody"
    assert dataset_json["name"] == "Dataset801_S" and dataset_json["licence"] == "toy"

    record = json.loads((folder / "split.json").read_text())
    assert record["counts"] == {"labeled": 4, "unlabeled": 8, "test": 2}
    assert record["selection"]["unit"] == "group" and len(record["groups"]["labeled"]) == 2
    splits = json.loads((tmp_path / "out" / "pre" / "Dataset801_S" / "splits_final.json").read_text())
    assert len(splits) == 2
    for fold in splits:
        assert {c[:10] for c in fold["val"]}.isdisjoint({c[:10] for c in fold["train"]})


def test_ungrouped_fraction_by_id_and_stale_splits(tmp_path):
    source = make_raw_dataset(tmp_path / "raw")
    convert(source, tmp_path / "out", "--labeled-count", "3", "--group-pattern", r"patient\d+")
    stale = tmp_path / "out" / "pre" / "Dataset801_S" / "splits_final.json"
    assert stale.is_file()
    # id lookup in --raw-root; new dataset written into --output-raw-root
    argv = ["800", "-d", "801", "--name", "S", "--raw-root", str(tmp_path / "raw"), "--output-raw-root",
            str(tmp_path / "out" / "raw"), "--preprocessed-root", str(tmp_path / "out" / "pre"),
            "--labeled-fraction", "0.5", "--overwrite"]  # fmt: skip
    assert split_dataset.main(argv) == 0
    folder = tmp_path / "out" / "raw" / "Dataset801_S"
    assert len(case_ids(folder / "imagesTr")) == 6 and len(case_ids(folder / "imagesUnlabeled")) == 6
    assert not stale.exists()  # nnU-Net would otherwise pair the new cases with the old folds


def test_split_errors(tmp_path):
    source = make_raw_dataset(tmp_path / "raw", patients=2, test=0)
    with pytest.raises(ConversionError, match="does not match the group pattern"):
        convert(source, tmp_path / "o1", "--labeled-count", "1", "--group-pattern", r"^case\d+")
    label = source / "labelsTr" / "patient002_frame09.nii.gz"
    write_nifti(label, np.full(SHAPE, 7, np.uint8))
    with pytest.raises(ConversionError, match=rf"{label}: label values \[7\] outside the expected set \[0, 1, 2\]"):
        convert(source, tmp_path / "o2", "--labeled-count", "1")
    write_nifti(label, np.zeros((2, 6, 4), np.uint8))
    with pytest.raises(ConversionError, match=f"shape mismatch: .*label {label}"):
        convert(source, tmp_path / "o3", "--labeled-count", "1")
    label.unlink()
    with pytest.raises(ConversionError, match=f"patient002_frame09_0000.nii.gz has no label \\(expected {label}\\)"):
        convert(source, tmp_path / "o4", "--labeled-count", "1")
    write_nifti(label, np.zeros(SHAPE, np.uint8))
    (source / "imagesTr" / "patient001_frame01_0001.nii.gz").unlink()
    with pytest.raises(ConversionError, match="case patient001_frame01 .* has channels \\[0\\], expected \\[0, 1\\]"):
        convert(source, tmp_path / "o5", "--labeled-count", "1")
    with pytest.raises(ConversionError, match="source dataset not found: nowhere"):
        convert("nowhere", tmp_path / "o6", "--labeled-count", "1")


def test_common_helpers():
    assert budget_count(70, fraction=0.1) == 7 and budget_count(3, fraction=0.01) == 1 and budget_count(5, count=0) == 0
    with pytest.raises(ConversionError):
        budget_count(5, count=6)
    items = [f"c{i}" for i in range(30)]
    assert seeded_order(items, 1) == seeded_order(list(reversed(items)), 1) != seeded_order(items, 2)
    pattern = re.compile(r"^(patient\d+)")
    assert group_of("patient007_frame01", pattern) == "patient007" and group_of("x", None) == "x"
    case_groups = {f"p{p}_f{f}": f"p{p}" for p in range(12) for f in range(2)}
    folds = grouped_folds(case_groups, seed=1234)
    assert len(folds) == 5 and sorted(c for f in folds for c in f["val"]) == sorted(case_groups)
    assert grouped_folds({"a": "g"}, seed=0) == []


@pytest.mark.parametrize("module", ["acdc", "isic", "split_dataset"])
def test_help(module):
    result = subprocess.run(
        [sys.executable, "-m", f"dataset_conversion.{module}", "--help"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "--overwrite" in result.stdout and "--dataset-id" in result.stdout


def test_written_images_keep_geometry(tmp_path):
    source = make_raw_dataset(tmp_path / "raw", patients=2, test=0)
    folder = convert(source, tmp_path / "out", "--labeled-count", "1", "--skip-checks")
    image = sitk.ReadImage(str(next((folder / "imagesTr").glob("*_0000.nii.gz"))))
    assert image.GetSize() == SHAPE[::-1]
