"""Tiny synthetic source folders in the layouts the converters accept (random pixels, for tests and demos).

Nothing here reads real data; every function writes a few small files under ``root`` and returns ``root``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "ACDC_H5_TRAIN",
    "ACDC_H5_VAL",
    "ACDC_SHAPE",
    "ACDC_SPACING",
    "make_acdc_h5",
    "make_acdc_official",
    "make_isic_folders",
    "make_isic_official",
    "write_isic_pair",
    "write_nifti",
]

ACDC_SPACING = (1.5, 1.25, 8.0)  # (x, y, z); anisotropic in-plane so that keeping the spacing is visible
ACDC_SHAPE = (3, 8, 6)  # (z, y, x)
ACDC_H5_TRAIN = ("patient099", "patient038", "patient050", "patient100")  # first SSL4MIS training patients
ACDC_H5_VAL = ("patient028", "patient085")  # first SSL4MIS validation patients


def write_nifti(path: Path, array: np.ndarray, spacing: Sequence[float] = ACDC_SPACING) -> None:
    """Write a (z, y, x) array as NIfTI with the given (x, y, z) spacing."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing))
    sitk.WriteImage(image, str(path))


def acdc_es_frame(number: int) -> int:
    """ES frame written into ``Info.cfg`` of toy patient ``number`` (ED is always frame 1)."""
    return 5 + number % 7


def make_acdc_official(
    root: Path, train: Sequence[int], test: Sequence[int] = (), shape: Sequence[int] = ACDC_SHAPE
) -> Path:
    """ACDC release layout: ``training/`` and ``testing/`` patient folders with Info.cfg, ED/ES frames, ``_gt``."""
    rng = np.random.default_rng(0)
    for folder, patients in (("training", train), ("testing", test)):
        for number in patients:
            patient = f"patient{number:03d}"
            patient_dir = root / folder / patient
            patient_dir.mkdir(parents=True)
            es = acdc_es_frame(number)
            (patient_dir / "Info.cfg").write_text(f"ED: 1\nES: {es}\nGroup: NOR\nHeight: 180.0\nNbFrame: 30\n")
            for frame in (1, es):
                stem = patient_dir / f"{patient}_frame{frame:02d}"
                write_nifti(Path(f"{stem}.nii.gz"), rng.random(tuple(shape), dtype=np.float32))
                write_nifti(Path(f"{stem}_gt.nii.gz"), rng.integers(0, 4, tuple(shape), dtype=np.uint8))
            (patient_dir / f"{patient}_4d.nii.gz").write_bytes(b"not read")  # the 4-D cine must be ignored
    return root


def make_acdc_h5(root: Path, slices_per_frame: int = 3, long_frame: int = 11) -> Path:
    """SSL4MIS ACDC layout: ``slices/``, ``volumes/``, ``train_slices.list``, ``train.list``, ``val.list``.

    ``patient099_frame01`` gets ``long_frame`` slices whose image value is the slice index plus noise in [0, 0.1), so
    numeric (not lexicographic) Z order can be checked.
    """
    import h5py

    rng = np.random.default_rng(1)
    (root / "slices").mkdir(parents=True)
    (root / "volumes").mkdir()
    slice_names, frames = [], []
    for patient in ACDC_H5_TRAIN:
        for frame in ("frame01", "frame02"):
            case = f"{patient}_{frame}"
            frames.append(case)
            n = long_frame if case == "patient099_frame01" else slices_per_frame
            for z in range(1, n + 1):
                with h5py.File(root / "slices" / f"{case}_slice_{z}.h5", "w") as f:
                    f["image"] = np.full((12, 10), z, dtype=np.float32) + rng.random((12, 10), dtype=np.float32) * 0.1
                    f["label"] = rng.integers(0, 4, (12, 10), dtype=np.uint8)
                slice_names.append(f"{case}_slice_{z}")
    val_frames = [f"{p}_{fr}" for p in ACDC_H5_VAL for fr in ("frame01", "frame02")]
    for case in val_frames:
        with h5py.File(root / "volumes" / f"{case}.h5", "w") as f:
            f["image"] = rng.random((4, 12, 10), dtype=np.float32)
            f["label"] = rng.integers(0, 4, (4, 12, 10), dtype=np.uint8)
    # like SSL4MIS, slices are listed out of Z order; the budget order is the patients' order of first appearance
    slice_names.sort(key=lambda s: (ACDC_H5_TRAIN.index(s[:10]), s))
    (root / "train_slices.list").write_text("\n".join(slice_names) + "\n")
    (root / "train.list").write_text("\n".join(frames) + "\n")
    (root / "val.list").write_text("\n".join(val_frames) + "\n")
    return root


def write_isic_pair(
    image_dir: Path, mask_dir: Path | None, case_id: str, rng: np.random.Generator, size: tuple[int, int] = (20, 24)
) -> None:
    """One random RGB JPEG and, if ``mask_dir`` is given, a {0, 255} ``<id>_segmentation.png``."""
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(image_dir / f"{case_id}.jpg")
    if mask_dir is not None:
        mask = np.zeros(size, dtype=np.uint8)
        mask[4 : 4 + int(rng.integers(2, 12)), 5:15] = 255
        Image.fromarray(mask).save(mask_dir / f"{case_id}_segmentation.png")


def make_isic_folders(root: Path, n_labeled: int = 20, n_unlabeled: int = 3) -> Path:
    """Layout of the project's ISIC 2017 copy: ``train/images``, ``train/masks``, ``unlabeled/images``."""
    rng = np.random.default_rng(0)
    for sub in ("train/images", "train/masks", "unlabeled/images"):
        (root / sub).mkdir(parents=True)
    for i in range(n_labeled):
        write_isic_pair(root / "train/images", root / "train/masks", f"ISIC_{i:07d}", rng)
    for i in range(n_unlabeled):
        write_isic_pair(root / "unlabeled/images", None, f"ISIC_{100 + i:07d}", rng)
    return root


def make_isic_official(root: Path, n_labeled: int = 10) -> Path:
    """ISIC 2018 Task 1 release layout (training input + ground truth folders)."""
    from dataset_conversion.isic import OFFICIAL_IMAGES, OFFICIAL_MASKS

    rng = np.random.default_rng(1)
    (root / OFFICIAL_IMAGES).mkdir(parents=True)
    (root / OFFICIAL_MASKS).mkdir()
    for i in range(n_labeled):
        write_isic_pair(root / OFFICIAL_IMAGES, root / OFFICIAL_MASKS, f"ISIC_{i:07d}", rng)
    (root / OFFICIAL_IMAGES / "LICENSE.txt").write_text("ignored")
    return root
