"""ISIC converter on tiny JPEG/PNG files in the official ISIC 2018 layout and the train/ + unlabeled/ layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_conversion import acdc, isic, toy_data
from dataset_conversion.common import ConversionError

_write_pair = toy_data.write_isic_pair
make_folders = toy_data.make_isic_folders
make_official = toy_data.make_isic_official


def convert(source: Path, out: Path, *extra: str, dataset_id: int = 905) -> Path:
    argv = [str(source), "-d", str(dataset_id), "--name", "T", "--raw-root", str(out / "raw")]
    argv += ["--preprocessed-root", str(out / "pre"), *extra]
    return isic.convert_isic(isic.build_parser().parse_args(argv))


def stems(folder: Path, suffix: str = "_0000.png") -> list[str]:
    return sorted(p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}"))


def test_folders_layout(tmp_path):
    source = make_folders(tmp_path / "src")
    folder = convert(source, tmp_path / "out", "--labeled-fraction", "0.25")
    # 20 labeled images: 4 test, 16 training of which 4 labeled; 12 + 3 unlabeled
    assert len(stems(folder / "imagesTr")) == 4 and stems(folder / "labelsTr", ".png") == stems(folder / "imagesTr")
    assert len(stems(folder / "imagesTs")) == 4 and stems(folder / "labelsTs", ".png") == stems(folder / "imagesTs")
    assert len(stems(folder / "imagesUnlabeled")) == 15 and len(stems(folder / "labelsUnlabeled", ".png")) == 12
    assert {f"ISIC_{100 + i:07d}" for i in range(3)} <= set(stems(folder / "imagesUnlabeled"))

    case = stems(folder / "imagesTr")[0]
    image = np.asarray(Image.open(folder / "imagesTr" / f"{case}_0000.png"))
    label = np.asarray(Image.open(folder / "labelsTr" / f"{case}.png"))
    source_mask = np.asarray(Image.open(source / "train/masks" / f"{case}_segmentation.png"))
    assert image.shape == (20, 24, 3) and label.shape == (20, 24)
    np.testing.assert_array_equal(label, (source_mask > 127).astype(np.uint8))

    dataset_json = json.loads((folder / "dataset.json").read_text())
    assert dataset_json["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    assert dataset_json["file_ending"] == ".png" and dataset_json["numTraining"] == 4
    assert dataset_json["labels"] == {"background": 0, "lesion": 1}
    record = json.loads((folder / "split.json").read_text())
    assert record["counts"] == {"labeled": 4, "unlabeled": 15, "test": 4}
    assert record["selection"]["seed"] == 0 and record["layout"] == "folders"
    assert not (tmp_path / "out" / "pre" / "Dataset905_T" / "splits_final.json").exists()


def test_budgets_nest_and_share_the_test_set(tmp_path):
    source = make_folders(tmp_path / "src")
    small = convert(source, tmp_path / "out", "--labeled-fraction", "0.25", dataset_id=905)
    large = convert(source, tmp_path / "out", "--labeled-count", "8", dataset_id=906)
    assert set(stems(small / "imagesTr")) < set(stems(large / "imagesTr"))
    assert stems(small / "imagesTs") == stems(large / "imagesTs")
    other_seed = convert(source, tmp_path / "out", "--labeled-count", "8", "--seed", "3", dataset_id=907)
    assert stems(other_seed / "imagesTs") == stems(large / "imagesTs")
    assert set(stems(other_seed / "imagesTs")).isdisjoint(stems(other_seed / "imagesUnlabeled"))


def test_official_layout_extra_unlabeled_resize_and_split_rgb(tmp_path):
    source = make_official(tmp_path / "src")
    extra = tmp_path / "extra"
    extra.mkdir()
    rng = np.random.default_rng(2)
    for case_id in ("ISIC_0000000", "ISIC_0000500"):  # the first id is already a labeled/test image
        _write_pair(extra, None, case_id, rng)
    folder = convert(
        source, tmp_path / "out", "--labeled-count", "2", "--test-fraction", "0.3", "--extra-unlabeled", str(extra),
        "--size", "8", "12", "--rgb-files", "split",
    )  # fmt: skip
    assert len(stems(folder / "imagesTs")) == 3 and len(stems(folder / "imagesTr")) == 2
    assert len(stems(folder / "imagesUnlabeled")) == 5 + 1  # 5 unlabeled labeled-pool images + 1 new extra image
    for channel in ("_0001.png", "_0002.png"):
        assert stems(folder / "imagesTr", channel) == stems(folder / "imagesTr")
    case = stems(folder / "imagesTr")[0]
    assert np.asarray(Image.open(folder / "imagesTr" / f"{case}_0000.png")).shape == (8, 12)
    label = np.asarray(Image.open(folder / "labelsTr" / f"{case}.png"))
    assert label.shape == (8, 12) and set(np.unique(label)) <= {0, 1}
    record = json.loads((folder / "split.json").read_text())
    assert record["layout"] == "official" and record["skipped_duplicate_unlabeled"] == [str(extra / "ISIC_0000000.jpg")]


def test_integrity_check_accepts_converted_datasets(tmp_path):
    """The one test that runs nnU-Net itself: its dataset integrity check on converted ISIC and ACDC datasets."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    folder = convert(make_folders(tmp_path / "src", n_labeled=6, n_unlabeled=1), tmp_path / "out",
                     "--labeled-count", "3", "--test-fraction", "0.3")  # fmt: skip
    verify_dataset_integrity(str(folder), num_processes=1)
    acdc_source = toy_data.make_acdc_official(tmp_path / "acdc", train=[1, 2, 3], test=[101])
    argv = [str(acdc_source), "--split", "release", "--labeled-patients", "2", "-d", "906", "--name", "A"]
    argv += ["--raw-root", str(tmp_path / "out" / "raw"), "--preprocessed-root", str(tmp_path / "out" / "pre")]
    verify_dataset_integrity(str(acdc.convert_acdc(acdc.build_parser().parse_args(argv))), num_processes=1)


# ---------------------------------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------------------------------


def test_error_image_without_mask_and_orphan_mask(tmp_path):
    source = make_folders(tmp_path / "src", n_labeled=4)
    mask = source / "train/masks/ISIC_0000002_segmentation.png"
    mask.unlink()
    with pytest.raises(ConversionError, match=f"ISIC_0000002.jpg has no label \\(expected {mask}\\)"):
        convert(source, tmp_path / "out", "--labeled-count", "1")
    _write_pair(tmp_path / "src/train/images", source / "train/masks", "ISIC_0000002", np.random.default_rng(0))
    (source / "train/images/ISIC_0000003.jpg").unlink()
    with pytest.raises(ConversionError, match="ISIC_0000003_segmentation.png has no image"):
        convert(source, tmp_path / "out", "--labeled-count", "1")


def test_error_mask_values_shape_and_unreadable(tmp_path, capsys):
    source = make_folders(tmp_path / "src", n_labeled=3)
    mask = source / "train/masks/ISIC_0000001_segmentation.png"
    Image.fromarray(np.full((20, 24), 128, np.uint8)).save(mask)
    with pytest.raises(ConversionError, match=rf"{mask}: label values \[128\] outside the expected set \[0, 255\]"):
        convert(source, tmp_path / "out", "--labeled-count", "1", "--test-fraction", "0")
    Image.fromarray(np.zeros((20, 23), np.uint8)).save(mask)
    with pytest.raises(
        ConversionError, match=f"shape mismatch: image .*ISIC_0000001.jpg has \\(20, 24\\), label {mask}"
    ):
        convert(source, tmp_path / "out", "--labeled-count", "1", "--test-fraction", "0", "--overwrite")
    image = source / "train/images/ISIC_0000001.jpg"
    image.write_bytes(b"not a jpeg")
    argv = [str(source), "-d", "905", "--name", "T", "--raw-root", str(tmp_path / "o3"), "--preprocessed-root",
            str(tmp_path / "p3"), "--labeled-count", "1"]  # fmt: skip
    assert isic.main(argv) == 1
    assert f"cannot read {image}" in capsys.readouterr().err
    with pytest.raises(ConversionError, match="requested 9 items but only"):
        convert(make_folders(tmp_path / "src2", n_labeled=5), tmp_path / "o4", "--labeled-count", "9")
