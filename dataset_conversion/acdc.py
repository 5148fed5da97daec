"""ACDC 2017 (cardiac cine MRI: 1 RV, 2 Myo, 3 LV) to a semi-supervised nnU-Net v2 raw dataset.

Two source layouts:

* ``official``: the challenge release, ``training/patientXXX/{Info.cfg, patientXXX_frameYY.nii.gz,
  patientXXX_frameYY_gt.nii.gz}`` and ``testing/`` likewise. The ED and ES frames named in ``Info.cfg`` become cases
  ``patientXXX_frameYY``; files are copied as they are, so the true voxel spacing is kept.
* ``h5``: the SSL4MIS preprocessing, ``slices/patientXXX_frameYY_slice_Z.h5`` (training, stacked back into per-frame
  volumes in numeric Z order), ``volumes/patientXXX_frameYY.h5`` (validation patients, used as the test set) and the
  ``*.list`` files. No spacing is stored there: see ``--through-plane-spacing``.

The labeled budget is a patient count in SSL4MIS order (the first N patients of ``train_slices.list``, i.e. the 3 / 7 /
14 patient budgets of the SSL4MIS benchmark) or an explicit patient list. Both frames of a patient always share a role,
and ``splits_final.json`` groups the labeled frames by patient.

Example:
    python -m dataset_conversion.acdc /data/ACDC_h5 -d 912 --labeled-patients 7
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from dataset_conversion.common import (
    ROLE_FOLDERS,
    ConversionError,
    add_common_arguments,
    check_label_values,
    check_same_shape,
    grouped_folds,
    prepare_dataset_folder,
    remove_empty_role_folders,
    removed_on_error,
    require_file,
    resize_2d,
    resolve_root,
    run_cli,
    run_parallel,
    split_record,
    write_dataset_json,
    write_split_record,
    write_splits_final,
)

__all__ = [
    "LABELS",
    "SSL4MIS_TEST_PATIENTS",
    "SSL4MIS_TRAIN_PATIENTS",
    "SSL4MIS_VAL_PATIENTS",
    "convert_acdc",
    "main",
]

logger = logging.getLogger(__name__)

LABELS = {"background": 0, "RV": 1, "Myo": 2, "LV": 3}
ALLOWED_LABELS = tuple(LABELS.values())

# SSL4MIS (HiLab-git/SSL4MIS, data/ACDC/train_slices.list) training patients, in list order: the first N are the
# labeled patients of the benchmark's N-patient budget (3 / 7 / 14 = 5 / 10 / 20 % of the slices).
SSL4MIS_TRAIN_PATIENTS: tuple[str, ...] = tuple(
    f"patient{i:03d}"
    for i in (
        99, 38, 50, 100, 58, 21, 49, 20, 72, 40, 60, 89, 4, 56, 98, 96, 31, 18, 94, 47,
        48, 55, 97, 74, 43, 41, 63, 37, 95, 54, 26, 88, 32, 69, 6, 71, 12, 73, 61, 17,
        25, 10, 57, 29, 51, 5, 36, 46, 62, 34, 76, 92, 70, 77, 67, 3, 91, 16, 14, 44,
        42, 90, 53, 27, 35, 86, 23, 9, 79, 15,
    )
)  # fmt: skip
# SSL4MIS data/ACDC/val.list patients, in list order.
SSL4MIS_VAL_PATIENTS: tuple[str, ...] = tuple(f"patient{i:03d}" for i in (28, 85, 82, 87, 19, 30, 78, 45, 2, 39))
# The SSL4MIS test patients are the rest of the 100 released training patients.
SSL4MIS_TEST_PATIENTS: tuple[str, ...] = tuple(
    p
    for p in (f"patient{i:03d}" for i in range(1, 101))
    if p not in SSL4MIS_TRAIN_PATIENTS and p not in SSL4MIS_VAL_PATIENTS
)

PATIENT_RE = re.compile(r"^(patient\d{3})")
SLICE_RE = re.compile(r"^(patient\d{3}_frame\d+)_slice_(\d+)\.h5$")
DEFAULT_THROUGH_PLANE_SPACING = 10.0


@dataclass(frozen=True)
class AcdcCase:
    """One frame to convert.

    Attributes:
        case_id: ``patientXXX_frameYY``.
        patient: ``patientXXX``.
        kind: ``"nifti"`` (image, label), ``"h5_slices"`` (slice files in Z order) or ``"h5_volume"`` (one file).
        sources: input files, see ``kind``.
        label: label file of a NIfTI case, None when the release has none (old test set).
        role: key of ``ROLE_FOLDERS``.
    """

    case_id: str
    patient: str
    kind: str
    sources: tuple[Path, ...]
    label: Path | None = None
    role: str = "labeled"


# ----------------------------------------------------------------------------------------------------------------------
# discovery: official release
# ----------------------------------------------------------------------------------------------------------------------


def read_info_cfg(path: Path) -> dict[str, str]:
    """Parse an ACDC ``Info.cfg`` (``KEY: value`` lines)."""
    require_file(path, "Info.cfg")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ConversionError(f"cannot read {path}: {error}") from error
    info = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    for key in ("ED", "ES"):
        if not info.get(key, "").isdigit():
            raise ConversionError(f"{path}: no integer '{key}:' line")
    return info


def official_patient_cases(patient_dir: Path, require_labels: bool = True) -> list[AcdcCase]:
    """ED and ES frames of one patient folder of the official release.

    Args:
        patient_dir: ``training/patientXXX`` or ``testing/patientXXX``.
        require_labels: raise when a frame has no ``_gt`` file (else the case gets ``label=None``).
    """
    if not patient_dir.is_dir():
        raise ConversionError(f"missing patient folder: {patient_dir}")
    patient = patient_dir.name
    info = read_info_cfg(patient_dir / "Info.cfg")
    cases = []
    for frame in dict.fromkeys(int(info[key]) for key in ("ED", "ES")):  # dict: ED == ES would give one case
        case_id = f"{patient}_frame{frame:02d}"
        image = require_file(patient_dir / f"{case_id}.nii.gz", "image")
        label = patient_dir / f"{case_id}_gt.nii.gz"
        if not label.is_file():
            if require_labels:
                raise ConversionError(f"image {image} has no label (expected {label})")
            label = None
        cases.append(AcdcCase(case_id, patient, "nifti", (image,), label))
    return cases


def discover_official(source: Path, split: str) -> tuple[dict[str, list[AcdcCase]], dict[str, list[str]]]:
    """Cases of the official release grouped by patient, and the patients of each split part.

    Returns:
        (patient -> cases, {"pool": training patients in budget order, "test": [...], "validation": [...]}).
    """
    training = source / "training"
    if not training.is_dir():
        raise ConversionError(f"missing folder: {training}")
    if split == "ssl4mis":
        parts = {
            "pool": list(SSL4MIS_TRAIN_PATIENTS),
            "validation": list(SSL4MIS_VAL_PATIENTS),
            "test": list(SSL4MIS_TEST_PATIENTS),
        }
        folders = {p: training / p for ps in parts.values() for p in ps}
    else:
        train_patients = sorted(p.name for p in training.iterdir() if p.is_dir() and PATIENT_RE.match(p.name))
        testing = source / "testing"
        test_patients = (
            sorted(p.name for p in testing.iterdir() if p.is_dir() and PATIENT_RE.match(p.name))
            if testing.is_dir()
            else []
        )
        if not test_patients:
            logger.warning("no testing/ patients in %s: the dataset gets no test set", source)
        parts = {"pool": ssl4mis_budget_order(train_patients), "validation": [], "test": test_patients}
        folders = {p: training / p for p in train_patients} | {p: testing / p for p in test_patients}
    cases = {}
    for patient, folder in folders.items():
        in_test = patient in parts["test"] and split == "release"
        patient_cases = official_patient_cases(folder, require_labels=not in_test)
        cases[patient] = patient_cases
    _check_test_labels([c for p in parts["test"] for c in cases[p]])
    return cases, parts


def _check_test_labels(test_cases: list[AcdcCase]) -> None:
    """Test labels may be absent altogether (the original release), not for some cases only."""
    missing = [c for c in test_cases if c.kind == "nifti" and c.label is None]
    if missing and len(missing) < len(test_cases):
        case = missing[0]
        raise ConversionError(f"image {case.sources[0]} has no label while other test cases have one")
    if missing:
        logger.warning("the test set has no labels: only imagesTs is written")


def ssl4mis_budget_order(patients: list[str]) -> list[str]:
    """SSL4MIS training order first, then the other patients ascending (for the release split)."""
    present = set(patients)
    first = [p for p in SSL4MIS_TRAIN_PATIENTS if p in present]
    return first + sorted(present - set(first))


# ----------------------------------------------------------------------------------------------------------------------
# discovery: SSL4MIS h5
# ----------------------------------------------------------------------------------------------------------------------


def _read_list(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _patient(case_id: str) -> str:
    match = PATIENT_RE.match(case_id)
    if match is None:
        raise ConversionError(f"case {case_id!r} does not start with patientXXX")
    return match.group(1)


def discover_h5(source: Path) -> tuple[dict[str, list[AcdcCase]], dict[str, list[str]], str]:
    """Cases of the SSL4MIS h5 layout grouped by patient.

    Returns:
        (patient -> cases, {"pool": training patients in budget order, "test": [...]}, name of the list that fixed the
        budget order).
    """
    slices_dir = source / "slices"
    volumes_dir = source / "volumes"
    if not slices_dir.is_dir():
        raise ConversionError(f"missing folder: {slices_dir}")

    slice_files: dict[str, list[tuple[int, Path]]] = {}
    for path in slices_dir.glob("*.h5"):
        match = SLICE_RE.match(path.name)
        if match is None:
            raise ConversionError(f"unexpected file name (want patientXXX_frameYY_slice_Z.h5): {path}")
        slice_files.setdefault(match.group(1), []).append((int(match.group(2)), path))

    train_slices = _read_list(source / "train_slices.list")
    train_frames = _read_list(source / "train.list")
    if train_slices is not None:
        for name in train_slices:
            require_file(slices_dir / f"{name}.h5", "slice listed in train_slices.list")
        order_source = "train_slices.list"
        order = list(dict.fromkeys(_patient(s) for s in train_slices))
    elif train_frames is not None:
        order_source = "train.list"
        order = list(dict.fromkeys(_patient(f) for f in train_frames))
    else:
        order_source = "built-in SSL4MIS order"
        order = ssl4mis_budget_order(sorted({_patient(f) for f in slice_files}))
    frames = train_frames if train_frames is not None else sorted(slice_files)

    cases: dict[str, list[AcdcCase]] = {}
    for frame in frames:
        if frame not in slice_files:
            raise ConversionError(f"missing slices of {frame}: no {slices_dir / (frame + '_slice_*.h5')}")
        z_paths = sorted(slice_files[frame])
        indices = [z for z, _ in z_paths]
        expected = list(range(indices[0], indices[0] + len(indices)))
        if indices != expected:
            gap = next(z for z in expected if z not in indices)
            raise ConversionError(f"missing slice file: {slices_dir / f'{frame}_slice_{gap}.h5'}")
        cases.setdefault(_patient(frame), []).append(
            AcdcCase(frame, _patient(frame), "h5_slices", tuple(p for _, p in z_paths))
        )
    for patient in order:
        if patient not in cases:
            raise ConversionError(f"{order_source} names {patient}, which has no slices in {slices_dir}")

    val_frames = _read_list(source / "val.list")
    if val_frames is None:
        val_frames = sorted(p.stem for p in volumes_dir.glob("*.h5")) if volumes_dir.is_dir() else []
    test_patients = list(dict.fromkeys(_patient(f) for f in val_frames))
    for frame in val_frames:
        path = require_file(volumes_dir / f"{frame}.h5", "volume listed in val.list")
        cases.setdefault(_patient(frame), []).append(AcdcCase(frame, _patient(frame), "h5_volume", (path,)))
    overlap = set(test_patients) & set(order)
    if overlap:
        raise ConversionError(f"patients in both the training and the validation lists: {sorted(overlap)}")
    return cases, {"pool": order, "test": test_patients, "validation": []}, order_source


# ----------------------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------------------


def _read_sitk(path: Path):
    import SimpleITK as sitk

    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise ConversionError(f"cannot read {path}: {str(error).strip().splitlines()[-1]}") from error


def _read_h5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "image" not in f or "label" not in f:
                raise ConversionError(f"{path}: needs 'image' and 'label' datasets, has {sorted(f.keys())}")
            image, label = f["image"][()], f["label"][()]
    except OSError as error:
        raise ConversionError(f"cannot read {path}: {error}") from error
    check_same_shape(image.shape, label.shape, f"{path}:image", f"{path}:label")
    return image, label


def _convert_case(case: AcdcCase, folder: Path, downscale: int, spacing: tuple[float, float, float]) -> dict:
    """Validate one case and write it to its role folders; returns a small summary (number of slices, shape)."""
    import SimpleITK as sitk

    image_dir, label_dir = (folder / d for d in ROLE_FOLDERS[case.role])
    out_image = image_dir / f"{case.case_id}_0000.nii.gz"
    out_label = label_dir / f"{case.case_id}.nii.gz"

    if case.kind == "nifti":
        image = _read_sitk(case.sources[0])
        if case.label is not None:
            label = _read_sitk(case.label)
            check_same_shape(image.GetSize(), label.GetSize(), case.sources[0], case.label)
            if not np.allclose(image.GetSpacing(), label.GetSpacing(), rtol=1e-4):
                raise ConversionError(
                    f"spacing mismatch: image {case.sources[0]} has {image.GetSpacing()}, "
                    f"label {case.label} has {label.GetSpacing()}"
                )
            check_label_values(sitk.GetArrayViewFromImage(label), ALLOWED_LABELS, case.label)
            shutil.copyfile(case.label, out_label)
        # copied, not rewritten: keeps the release's spacing, affine and dtype bit for bit
        shutil.copyfile(case.sources[0], out_image)
        return {"case": case.case_id, "slices": image.GetSize()[2], "shape": list(image.GetSize()[::-1])}

    if case.kind == "h5_slices":
        pairs = [_read_h5(p) for p in case.sources]
        for path, (img, _) in zip(case.sources, pairs):
            if img.shape != pairs[0][0].shape:
                raise ConversionError(
                    f"in-plane size of {path} is {img.shape}, other slices of {case.case_id} have {pairs[0][0].shape}"
                )
            if img.ndim != 2:
                raise ConversionError(f"{path}: expected a 2-D slice, got shape {img.shape}")
        image = np.stack([img for img, _ in pairs])
        label = np.stack([lab for _, lab in pairs])
        where = case.sources[0].parent / f"{case.case_id}_slice_*.h5"
    else:
        image, label = _read_h5(case.sources[0])
        if image.ndim != 3:
            raise ConversionError(f"{case.sources[0]}: expected a (D, H, W) volume, got shape {image.shape}")
        where = case.sources[0]
    check_label_values(label, ALLOWED_LABELS, where)
    if downscale > 1:
        shape = (round(image.shape[1] / downscale), round(image.shape[2] / downscale))
        image = resize_2d(image.astype(np.float32), shape, order=1)
        label = resize_2d(label, shape, order=0)
    for array, path in ((image.astype(np.float32), out_image), (label.astype(np.uint8), out_label)):
        itk = sitk.GetImageFromArray(array)  # (z, y, x) array -> image of size (x, y, z)
        itk.SetSpacing(spacing)
        sitk.WriteImage(itk, str(path), useCompression=True)
    return {"case": case.case_id, "slices": int(image.shape[0]), "shape": list(image.shape)}


# ----------------------------------------------------------------------------------------------------------------------
# conversion
# ----------------------------------------------------------------------------------------------------------------------


def parse_patient_list(value: str) -> list[str]:
    """Patients from ``"patient099,patient038"`` or from a file with one patient or case id per line."""
    path = Path(value)
    items = path.read_text().split() if path.is_file() else [v for v in re.split(r"[,\s]+", value) if v]
    return list(dict.fromkeys(_patient(v) for v in items))


def select_labeled_patients(pool: list[str], count: int | None, explicit: list[str] | None) -> list[str]:
    """First ``count`` patients of ``pool`` (budget order) or the explicit list, checked against the pool."""
    if explicit is not None:
        unknown = [p for p in explicit if p not in pool]
        if unknown:
            raise ConversionError(f"labeled patients not among the training patients of this split: {unknown}")
        return explicit
    assert count is not None
    if not 0 <= count <= len(pool):
        raise ConversionError(f"--labeled-patients must be in 0..{len(pool)}, got {count}")
    return pool[:count]


def detect_layout(source: Path) -> str:
    """``"official"`` when ``training/`` exists, ``"h5"`` when ``slices/`` exists."""
    if (source / "training").is_dir():
        return "official"
    if (source / "slices").is_dir():
        return "h5"
    raise ConversionError(f"{source}: neither training/ (official release) nor slices/ (SSL4MIS h5) found")


def convert_acdc(args: argparse.Namespace) -> Path:
    """Convert ACDC as described by the parsed command-line ``args``; returns the dataset folder."""
    source: Path = args.source
    if not source.is_dir():
        raise ConversionError(f"missing source folder: {source}")
    layout = detect_layout(source) if args.layout == "auto" else args.layout
    if layout == "official" and args.downscale != 1:
        raise ConversionError("--downscale only applies to the h5 layout (the release keeps its true spacing)")
    if args.downscale < 1:
        raise ConversionError(f"--downscale must be a positive integer, got {args.downscale}")

    if layout == "official":
        cases, parts = discover_official(source, args.split)
        order_source = "built-in SSL4MIS order"
    else:
        cases, parts, order_source = discover_h5(source)
    explicit = parse_patient_list(args.labeled_list) if args.labeled_list is not None else None
    labeled = select_labeled_patients(parts["pool"], args.labeled_patients, explicit)

    roles = {p: "labeled" for p in labeled}
    roles |= {p: "unlabeled" for p in parts["pool"] if p not in roles}
    roles |= {p: "test" for p in parts["test"]} | {p: "validation" for p in parts["validation"]}
    jobs = [
        AcdcCase(c.case_id, c.patient, c.kind, c.sources, c.label, roles[p])
        for p in parts["pool"] + parts["validation"] + parts["test"]
        for c in cases[p]
    ]

    name = args.name or f"ACDC{'' if layout == 'official' else 'h5'}_{len(labeled)}lab"
    raw_root = resolve_root(args.raw_root, "nnUNet_raw")
    preprocessed_root = resolve_root(args.preprocessed_root, "nnUNet_preprocessed")
    folder = prepare_dataset_folder(raw_root, args.dataset_id, name, args.overwrite)
    with removed_on_error(folder):
        z_spacing = args.through_plane_spacing
        spacing = (float(args.downscale), float(args.downscale), float(z_spacing))
        summaries = run_parallel(
            partial(_convert_case, folder=folder, downscale=args.downscale, spacing=spacing),
            jobs,
            args.num_processes,
            desc=f"ACDC {layout}",
        )
        slices = {s["case"]: s["slices"] for s in summaries}
        by_role = {role: [c.case_id for c in jobs if c.role == role] for role in ROLE_FOLDERS}
        by_role = {role: ids for role, ids in by_role.items() if ids or role in ("labeled", "unlabeled", "test")}
        if layout == "official" and any(c.label is None for c in jobs if c.role == "test"):
            shutil.rmtree(folder / "labelsTs")

        extra: dict = {}
        if layout == "h5":
            extra["spacing_assumption"] = (
                f"SSL4MIS h5 files store no spacing: written as (x, y, z) = {spacing}, i.e. 1 unit = 1 pixel of the "
                f"SSL4MIS in-plane grid (downscale {args.downscale}) and a through-plane spacing of {z_spacing} "
                "so that "
                "nnU-Net treats the volumes as anisotropic stacks of 2-D slices; distances are in pixels, not mm."
            )
        description = (
            "ACDC cine MRI, ED and ES frames as cases; labeled training cases in imagesTr/labelsTr, unlabeled ones in "
            "imagesUnlabeled (true labels kept aside in labelsUnlabeled), see split.json."
        )
        write_dataset_json(
            folder,
            {0: "cineMRI"},
            LABELS,
            len(by_role["labeled"]),
            ".nii.gz",
            dataset_name=folder.name,
            description=description + (" " + extra["spacing_assumption"] if extra else ""),
            reference="Bernard et al., IEEE TMI 2018 (ACDC); SSL4MIS (Luo et al.) patient split and budgets",
            licence="ACDC: research use, non-commercial (CC BY-NC-SA 4.0 on public mirrors)",
            numUnlabeled=len(by_role["unlabeled"]),
            numTest=len(by_role["test"]),
            **extra,
        )
        groups = {role: [p for p, r in roles.items() if r == role] for role in by_role}
        selection = (
            {"method": "explicit_list", "patients": labeled}
            if explicit is not None
            else {
                "method": "first_n_in_order",
                "count": len(labeled),
                "order_source": order_source,
                "patients": labeled,
            }
        )
        folds = grouped_folds({c: _patient(c) for c in by_role["labeled"]}, args.fold_seed)
        if not folds:
            logger.warning("fewer than 2 labeled patients: no splits_final.json written")
        splits_path = write_splits_final(preprocessed_root, folder.name, folds, args.overwrite)
        record = split_record(
            "dataset_conversion.acdc",
            source,
            args,
            by_role,
            selection,
            groups=groups,
            layout=layout,
            split=args.split if layout == "official" else "ssl4mis_h5",
            fold_seed=args.fold_seed,
            splits_final=str(splits_path) if splits_path else None,
            slices={role: sum(slices[c] for c in ids) for role, ids in by_role.items()},
            **extra,
        )
        write_split_record(folder, record)
        remove_empty_role_folders(folder)
        logger.info(
            "%s: %s",
            folder.name,
            ", ".join(f"{role} {len(ids)} cases / {record['slices'][role]} slices" for role, ids in by_role.items()),
        )
    return folder


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the ACDC converter."""
    parser = argparse.ArgumentParser(
        prog="nnunet_dumm_convert_acdc",
        description="Convert ACDC (official release or SSL4MIS h5) to a semi-supervised nnU-Net v2 raw dataset.",
    )
    parser.add_argument("source", type=Path, help="ACDC folder (with training/[testing/], or slices/ volumes/ *.list)")
    parser.add_argument("--layout", choices=("auto", "official", "h5"), default="auto", help="source layout")
    parser.add_argument(
        "--split",
        choices=("ssl4mis", "release"),
        default="ssl4mis",
        help="official layout only: SSL4MIS 70/10/20 patient split (the 10 validation patients go to imagesVal/"
        "labelsVal) or train/test by release folder. The h5 layout always uses its lists (validation = test set).",
    )
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument(
        "--labeled-patients", type=int, help="labeled budget: the first N training patients in SSL4MIS order"
    )
    budget.add_argument(
        "--labeled-list", help="labeled patients: comma-separated, or a file with one patient or case id per line"
    )
    parser.add_argument("--fold-seed", type=int, default=1234, help="seed of the patient-grouped 5-fold split")
    parser.add_argument(
        "--downscale", type=int, default=1, help="h5 layout: in-plane downscale factor (images linear, labels nearest)"
    )
    parser.add_argument(
        "--through-plane-spacing",
        type=float,
        default=DEFAULT_THROUGH_PLANE_SPACING,
        help="h5 layout: z spacing written (in-plane is 1 x 1 per original pixel)",
    )
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``nnunet_dumm_convert_acdc``."""
    return run_cli(build_parser(), convert_acdc, argv)


if __name__ == "__main__":
    raise SystemExit(main())
