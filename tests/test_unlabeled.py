"""Unlabeled images: preprocessing with the dataset's plans, resume, and clear errors on bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_dumm.unlabeled import (
    UnlabeledDataError,
    completed_cases,
    find_unlabeled_cases,
    preprocess_unlabeled,
    unlabeled_preprocessed_folder,
)
from tests.conftest import TINY_SPEC


def test_unlabeled_cases_are_preprocessed_beside_the_labeled_folder(planned):
    folder = unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d")
    assert folder.parent == Path(os.environ["nnUNet_preprocessed"]) / "Dataset950_DUMMDemo"
    assert len(completed_cases(folder)) == TINY_SPEC.num_unlabeled
    # nothing leaked into the labeled folder, which nnU-Net's splits are made from
    labeled = folder.parent / "nnUNetPlans_2d"
    assert not any(p.name.startswith("demo_ul") for p in labeled.iterdir())
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    data, seg, _, properties = nnUNetDatasetBlosc2(str(folder)).load_case("demo_ul_000")
    assert data.shape[0] == 1 and seg.shape == (1, *data.shape[1:])
    assert set(np.unique(seg[:])) <= {-1, 0}  # no label information: only nnU-Net's nonzero mask
    assert set(properties["class_locations"]) == {1, 2, 3}


def test_rerun_skips_finished_cases_and_redoes_a_missing_one(planned, capsys):
    folder = unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d")
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.b2nd")}
    (folder / "demo_ul_003.pkl").unlink()  # as if killed before the case's pickle was moved into place
    preprocess_unlabeled(950, "2d")
    assert "1 new" in capsys.readouterr().out
    after = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.b2nd")}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"demo_ul_003.b2nd", "demo_ul_003_seg.b2nd"}
    assert len(completed_cases(folder)) == TINY_SPEC.num_unlabeled


def test_preprocessing_lists_the_folder_a_fixed_number_of_times_whatever_the_pool_size(planned, monkeypatch):
    """A listing of the output folder per case made the 2,040-image ISIC pool take 106 s, 45 s of it waiting."""
    import nnunet_dumm.unlabeled as unlabeled

    folder = unlabeled_preprocessed_folder("Dataset950_DUMMDemo", "nnUNetPlans_2d")
    for pickle in folder.glob("*.pkl"):
        pickle.unlink()  # every case is preprocessed again
    listings = []
    monkeypatch.setattr(unlabeled, "completed_cases", lambda f: listings.append(f) or completed_cases(f))
    preprocess_unlabeled(950, "2d", verbose=False)
    assert len(listings) <= 2 < TINY_SPEC.num_unlabeled
    assert len(completed_cases(folder)) == TINY_SPEC.num_unlabeled


def test_a_case_counts_as_completed_only_with_its_pickle_and_its_array(tmp_path):
    from nnunet_dumm.unlabeled import is_completed

    (tmp_path / "a.pkl").touch()
    (tmp_path / "a.b2nd").touch()
    (tmp_path / "b.b2nd").touch()  # killed before its pickle was moved into place
    (tmp_path / "c.pkl").touch()  # its array lost
    assert [case for case in "abc" if is_completed(tmp_path, case)] == completed_cases(tmp_path) == ["a"]


@pytest.fixture
def bad_dataset(planned):
    """A copy of the planned demo dataset as Dataset951_Bad, whose unlabeled images a test can break."""
    raw_root, pre_root = Path(os.environ["nnUNet_raw"]), Path(os.environ["nnUNet_preprocessed"])
    raw, pre = raw_root / "Dataset951_Bad", pre_root / "Dataset951_Bad"
    shutil.rmtree(raw, ignore_errors=True)
    shutil.rmtree(pre, ignore_errors=True)
    shutil.copytree(planned, raw)
    pre.mkdir()
    for name in ("nnUNetPlans.json", "dataset.json"):
        shutil.copy(pre_root / "Dataset950_DUMMDemo" / name, pre / name)
    yield raw
    shutil.rmtree(raw, ignore_errors=True)
    shutil.rmtree(pre, ignore_errors=True)


def _write(path: Path, array: np.ndarray) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


def _first_unlabeled(raw: Path) -> Path:
    return sorted((raw / "imagesUnlabeled").iterdir())[0]


BAD_INPUTS = {
    "two channels for a one-channel dataset": (
        lambda raw: _write(raw / "imagesUnlabeled" / "demo_ul_000_0001.nii.gz", np.ones((32, 32), np.float32)),
        "demo_ul_000_0000.nii.gz: case 'demo_ul_000' has 2 file",
    ),
    "wrong file ending": (
        lambda raw: _write(raw / "imagesUnlabeled" / "extra_0000.nrrd", np.ones((32, 32), np.float32)),
        "extra_0000.nrrd: wrong file ending",
    ),
    "no channel suffix": (
        lambda raw: shutil.copy(_first_unlabeled(raw), raw / "imagesUnlabeled" / "plain.nii.gz"),
        "plain.nii.gz: name must be CASE_XXXX",
    ),
    "missing dataset.json": (
        lambda raw: (Path(os.environ["nnUNet_preprocessed"]) / raw.name / "dataset.json").unlink(),
        "Dataset951_Bad/dataset.json: missing",
    ),
    "empty imagesUnlabeled": (
        lambda raw: [p.unlink() for p in (raw / "imagesUnlabeled").iterdir()],
        "imagesUnlabeled: empty",
    ),
    "no imagesUnlabeled": (
        lambda raw: shutil.rmtree(raw / "imagesUnlabeled"),
        "imagesUnlabeled: missing",
    ),
    "case id of a labeled case": (
        lambda raw: shutil.copy(_first_unlabeled(raw), raw / "imagesUnlabeled" / "demo_tr_000_0000.nii.gz"),
        "case id 'demo_tr_000' is also a labeled case",
    ),
    "corrupt image": (
        lambda raw: (raw / "imagesUnlabeled" / "demo_ul_002_0000.nii.gz").write_bytes(b"not a nifti file"),
        "demo_ul_002_0000.nii.gz: cannot be read as an image",
    ),
    "constant image": (
        lambda raw: _write(raw / "imagesUnlabeled" / "demo_ul_002_0000.nii.gz", np.full((32, 32), 7, np.float32)),
        "demo_ul_002_0000.nii.gz: is constant",
    ),
    "3-D image in a 2-D dataset": (
        lambda raw: _write(raw / "imagesUnlabeled" / "demo_ul_002_0000.nii.gz", np.ones((3, 32, 32), np.float32)),
        "demo_ul_002_0000.nii.gz: is 3-D, the labeled images are 2-D",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_the_file_and_leaves_no_output(bad_dataset, case):
    breaker, message = BAD_INPUTS[case]
    breaker(bad_dataset)
    with pytest.raises(UnlabeledDataError, match=message.replace("(", r"\(")):
        preprocess_unlabeled(951, "2d", verbose=False)
    assert not unlabeled_preprocessed_folder("Dataset951_Bad", "nnUNetPlans_2d").exists()


def test_nan_image_names_the_file(bad_dataset, monkeypatch):
    # ITK's NIfTI reader turns NaN into 0, so a NaN reaches us only through other readers: simulate one.
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    real_read = SimpleITKIO.read_images

    def read_with_nan(self, files):
        data, properties = real_read(self, files)
        if files[0].endswith("demo_ul_002_0000.nii.gz"):
            data[..., 0, 0] = np.nan
        return data, properties

    monkeypatch.setattr(SimpleITKIO, "read_images", read_with_nan)
    with pytest.raises(UnlabeledDataError, match="demo_ul_002_0000.nii.gz: contains NaN"):
        preprocess_unlabeled(951, "2d", verbose=False)
    assert not unlabeled_preprocessed_folder("Dataset951_Bad", "nnUNetPlans_2d").exists()


def test_cli_exits_non_zero_with_the_message(bad_dataset, capsys):
    from nnunet_dumm.cli import preprocess_unlabeled_entry

    (bad_dataset / "imagesUnlabeled" / "demo_ul_001_0000.nii.gz").write_bytes(b"garbage")
    with pytest.raises(SystemExit) as exit_info:
        preprocess_unlabeled_entry(["-d", "951", "-c", "2d"])
    assert exit_info.value.code == 2
    assert "demo_ul_001_0000.nii.gz: cannot be read" in capsys.readouterr().err


def test_find_unlabeled_cases_lists_channel_files(planned):
    cases = find_unlabeled_cases(planned)
    assert len(cases) == TINY_SPEC.num_unlabeled
    assert all(len(files) == 1 and files[0].endswith("_0000.nii.gz") for files in cases.values())


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a partial copy, as `head -c` makes


def _flip_stored_crc(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-8] ^= 0x01  # a bit of the CRC-32 in gzip's trailer: the data still inflate, only the check can tell
    path.write_bytes(bytes(data))


def test_truncated_and_bit_flipped_gzip_images_are_each_named_and_nothing_is_written(bad_dataset):
    """SimpleITK reads a truncated .nii.gz as an image padded with zeros and never compares the gzip CRC."""
    truncated = bad_dataset / "imagesUnlabeled" / "demo_ul_002_0000.nii.gz"
    flipped = bad_dataset / "imagesUnlabeled" / "demo_ul_005_0000.nii.gz"
    _truncate(truncated)
    _flip_stored_crc(flipped)
    with pytest.raises(UnlabeledDataError) as error:
        preprocess_unlabeled(951, "2d", verbose=False)
    assert f"{truncated}: truncated gzip stream" in str(error.value)
    assert f"{flipped}: CRC-32 mismatch" in str(error.value)
    assert "2 unlabeled input files failed" in str(error.value)
    assert not unlabeled_preprocessed_folder("Dataset951_Bad", "nnUNetPlans_2d").exists()


def test_a_damaged_true_label_is_named(bad_dataset):
    label = bad_dataset / "labelsUnlabeled" / "demo_ul_003.nii.gz"
    _truncate(label)
    with pytest.raises(UnlabeledDataError, match=f"{label}: truncated gzip stream"):
        preprocess_unlabeled(951, "2d", verbose=False)


def test_a_finished_case_whose_raw_image_is_damaged_later_is_named_and_removed(bad_dataset):
    folder = preprocess_unlabeled(951, "2d", verbose=False)
    victim = bad_dataset / "imagesUnlabeled" / "demo_ul_004_0000.nii.gz"
    _truncate(victim)
    with pytest.raises(UnlabeledDataError, match=f"{victim}: truncated gzip stream"):
        preprocess_unlabeled(951, "2d", verbose=False)
    assert not list(folder.rglob("demo_ul_004*"))  # nothing of the old, now unfounded case is left
    assert len(completed_cases(folder)) == TINY_SPEC.num_unlabeled - 1


def test_a_replaced_image_and_true_labels_added_later_are_used_on_rerun(bad_dataset, capsys):
    from nnunet_dumm.unlabeled import TRUE_LABELS_SUBFOLDER, load_preprocessed_image

    images, labels = bad_dataset / "imagesUnlabeled", bad_dataset / "labelsUnlabeled"
    shutil.move(labels, bad_dataset / "labels_not_yet")
    folder = preprocess_unlabeled(951, "2d", verbose=False)
    assert not (folder / TRUE_LABELS_SUBFOLDER).exists()

    shutil.copy(images / "demo_ul_007_0000.nii.gz", images / "demo_ul_001_0000.nii.gz")  # a fixed image
    shutil.move(bad_dataset / "labels_not_yet", labels)
    (labels / "demo_ul_002.nii.gz").unlink()
    preprocess_unlabeled(951, "2d")
    assert f"0 new, {TINY_SPEC.num_unlabeled - 1} preprocessed again" in capsys.readouterr().out
    np.testing.assert_array_equal(load_preprocessed_image(folder, "demo_ul_001"),
                                  load_preprocessed_image(folder, "demo_ul_007"))
    true_labels = sorted(p.stem for p in (folder / TRUE_LABELS_SUBFOLDER).glob("*.npy"))
    assert true_labels == sorted(set(completed_cases(folder)) - {"demo_ul_002"})

    (labels / "demo_ul_003.nii.gz").unlink()  # a true label that disappears takes its preprocessed copy along
    preprocess_unlabeled(951, "2d")
    assert "0 new, 1 preprocessed again" in capsys.readouterr().out
    assert not (folder / TRUE_LABELS_SUBFOLDER / "demo_ul_003.npy").exists()
    preprocess_unlabeled(951, "2d")
    assert "0 new, 0 preprocessed again" in capsys.readouterr().out


def test_cases_preprocessed_before_raw_files_were_recorded_are_redone_once(bad_dataset, capsys):
    from batchgenerators.utilities.file_and_folder_operations import load_pickle, write_pickle

    folder = preprocess_unlabeled(951, "2d", verbose=False)
    arrays = {p.name: p.read_bytes() for p in folder.glob("*.b2nd")}
    for pickle in folder.glob("*.pkl"):
        properties = load_pickle(str(pickle))
        del properties["dumm_raw_files"]
        write_pickle(properties, str(pickle))
    preprocess_unlabeled(951, "2d")
    assert f"0 new, {TINY_SPEC.num_unlabeled} preprocessed again" in capsys.readouterr().out
    # the same bytes again: whatever was computed from them (pseudo-labels) stays valid
    assert {p.name: p.read_bytes() for p in folder.glob("*.b2nd")} == arrays
    preprocess_unlabeled(951, "2d")
    assert "0 new, 0 preprocessed again" in capsys.readouterr().out


def test_no_scratch_folder_is_left_after_a_run(bad_dataset):
    folder = preprocess_unlabeled(951, "2d", verbose=False)
    assert not list((folder / ".partial").glob("*"))


def test_an_unreadable_true_label_is_named_before_anything_is_written(bad_dataset):
    label = bad_dataset / "labelsUnlabeled" / "demo_ul_006.nii.gz"
    label.write_bytes(b"not a nifti file")
    with pytest.raises(UnlabeledDataError, match=f"{label}: cannot be read as a label map"):
        preprocess_unlabeled(951, "2d", verbose=False)
    assert not unlabeled_preprocessed_folder("Dataset951_Bad", "nnUNetPlans_2d").exists()
