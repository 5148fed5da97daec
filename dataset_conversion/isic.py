"""ISIC skin-lesion segmentation (ISIC 2018 Task 1 / ISIC 2017 Part 1, binary: 1 lesion) to a semi-supervised
nnU-Net v2 raw dataset in nnU-Net's 2-D natural-image format.

Source layouts:

* ``official`` (ISIC 2018 Task 1): ``ISIC2018_Task1-2_Training_Input/ISIC_*.jpg`` and
  ``ISIC2018_Task1_Training_GroundTruth/ISIC_*_segmentation.png``.
* ``folders`` (e.g. the ISIC 2017 copy of the project): ``train/images/ISIC_*.jpg``,
  ``train/masks/ISIC_*_segmentation.png`` and, if present, ``unlabeled/images/`` as an unlabeled pool.

Output format, as nnU-Net's own ``Dataset120_RoadSegmentation``: one RGB PNG per case, ``CASE_0000.png``, with
``channel_names`` ``{0: R, 1: G, 2: B}`` and ``file_ending`` ``.png``; ``NaturalImage2DIO`` reads the three
channels from that one file. ``--rgb-files split`` writes three grey PNGs ``_0000/_0001/_0002`` instead (also valid
for nnU-Net).
Masks ({0, 255}) become {0, 1} (> 127 -> 1).

A test hold-out (``--test-fraction``, own seed) is drawn first from all labeled images, so datasets with different
labeled budgets share the same test set; the labeled budget is then the first N of a seeded permutation of the rest,
so a 10 % labeled set is contained in the 20 % one of the same seed.

Example:
    python -m dataset_conversion.isic /data/isic2017 -d 915 --labeled-fraction 0.1
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from dataset_conversion.common import (
    ROLE_FOLDERS,
    ConversionError,
    add_common_arguments,
    budget_count,
    check_label_values,
    check_same_shape,
    prepare_dataset_folder,
    remove_empty_role_folders,
    removed_on_error,
    resolve_root,
    run_cli,
    run_parallel,
    seeded_order,
    split_record,
    write_dataset_json,
    write_split_record,
    write_splits_final,
)

__all__ = ["LABELS", "convert_isic", "main"]

logger = logging.getLogger(__name__)

LABELS = {"background": 0, "lesion": 1}
MASK_VALUES = (0, 255)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MASK_SUFFIX = "_segmentation.png"

OFFICIAL_IMAGES = "ISIC2018_Task1-2_Training_Input"
OFFICIAL_MASKS = "ISIC2018_Task1_Training_GroundTruth"


@dataclass(frozen=True)
class IsicCase:
    """One image to convert; ``mask`` is None for unlabeled images."""

    case_id: str
    image: Path
    mask: Path | None
    role: str = "labeled"


def list_images(folder: Path) -> dict[str, Path]:
    """Case id (file stem) -> image path, for the image files of ``folder``."""
    if not folder.is_dir():
        raise ConversionError(f"missing folder: {folder}")
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.endswith(MASK_SUFFIX):
            if path.stem in images:
                raise ConversionError(f"two images with the case id {path.stem}: {images[path.stem]} and {path}")
            images[path.stem] = path
    return images


def pair_masks(images: dict[str, Path], mask_dir: Path) -> list[IsicCase]:
    """Labeled cases: every image needs ``<id>_segmentation.png``, every mask an image."""
    if not mask_dir.is_dir():
        raise ConversionError(f"missing folder: {mask_dir}")
    masks = {p.name[: -len(MASK_SUFFIX)]: p for p in mask_dir.iterdir() if p.name.endswith(MASK_SUFFIX)}
    for case_id, image in images.items():
        if case_id not in masks:
            raise ConversionError(f"image {image} has no label (expected {mask_dir / (case_id + MASK_SUFFIX)})")
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise ConversionError(f"label {masks[orphans[0]]} has no image in {next(iter(images.values())).parent}")
    return [IsicCase(case_id, image, masks[case_id]) for case_id, image in images.items()]


def discover(source: Path, layout: str) -> tuple[str, list[IsicCase], list[Path]]:
    """Labeled cases and default unlabeled folders of ``source``.

    Returns:
        (layout, labeled cases, folders of unlabeled images found in the layout).
    """
    if layout == "auto":
        if (source / OFFICIAL_IMAGES).is_dir():
            layout = "official"
        elif (source / "train" / "images").is_dir():
            layout = "folders"
        else:
            raise ConversionError(f"{source}: neither {OFFICIAL_IMAGES}/ nor train/images/ found")
    if layout == "official":
        image_dir, mask_dir, unlabeled = source / OFFICIAL_IMAGES, source / OFFICIAL_MASKS, []
    else:
        image_dir, mask_dir = source / "train" / "images", source / "train" / "masks"
        unlabeled = [source / "unlabeled" / "images"] if (source / "unlabeled" / "images").is_dir() else []
    images = list_images(image_dir)
    if not images:
        raise ConversionError(f"no images in {image_dir}")
    return layout, pair_masks(images, mask_dir), unlabeled


def _read(path: Path, mode: str):
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode) if image.mode != mode else image.copy()
    except (OSError, ValueError) as error:
        raise ConversionError(f"cannot read {path}: {error}") from error


def _convert_case(case: IsicCase, folder: Path, size: tuple[int, int] | None, split_rgb: bool) -> tuple[int, int]:
    """Validate one case and write it; returns the written (H, W)."""
    from PIL import Image

    image_dir, label_dir = (folder / d for d in ROLE_FOLDERS[case.role])
    image = _read(case.image, "RGB")
    if case.mask is not None:
        mask = _read(case.mask, "L")
        check_same_shape(image.size[::-1], mask.size[::-1], case.image, case.mask)
        mask_array = np.asarray(mask)
        check_label_values(mask_array, MASK_VALUES, case.mask)
        # binarise first, then resize nearest: the written label only ever holds {0, 1}
        label = Image.fromarray((mask_array > 127).astype(np.uint8))
        if size is not None:
            label = label.resize(size[::-1], Image.Resampling.NEAREST)
        label.save(label_dir / f"{case.case_id}.png")
    if size is not None:
        image = image.resize(size[::-1], Image.Resampling.BILINEAR)
    if split_rgb:
        for channel, band in enumerate(image.split()):
            band.save(image_dir / f"{case.case_id}_{channel:04d}.png")
    else:
        image.save(image_dir / f"{case.case_id}_0000.png")
    return image.size[1], image.size[0]


def convert_isic(args: argparse.Namespace) -> Path:
    """Convert ISIC as described by the parsed command-line ``args``; returns the dataset folder."""
    source: Path = args.source
    if not source.is_dir():
        raise ConversionError(f"missing source folder: {source}")
    layout, labeled_pool, default_unlabeled = discover(source, args.layout)
    unlabeled_dirs = ([] if args.no_default_unlabeled else default_unlabeled) + list(args.extra_unlabeled)

    # test hold-out first, with its own seed: identical for every labeled budget
    ids = [c.case_id for c in labeled_pool]
    n_test = budget_count(len(ids), fraction=args.test_fraction)
    test_ids = set(seeded_order(ids, args.test_seed)[:n_test])
    train_ids = [i for i in ids if i not in test_ids]
    n_labeled = budget_count(len(train_ids), count=args.labeled_count, fraction=args.labeled_fraction)
    labeled_ids = set(seeded_order(train_ids, args.seed)[:n_labeled])

    def role(case_id: str) -> str:
        return "test" if case_id in test_ids else "labeled" if case_id in labeled_ids else "unlabeled"

    jobs = [IsicCase(c.case_id, c.image, c.mask, role(c.case_id)) for c in labeled_pool]
    # extra images whose id is already used (e.g. a 2018 folder holding 2017 test images) are skipped: a test image
    # must never reach the unlabeled training pool
    taken, skipped = set(ids), []
    for folder in unlabeled_dirs:
        for case_id, path in list_images(folder).items():
            if case_id in taken:
                skipped.append(str(path))
                continue
            taken.add(case_id)
            jobs.append(IsicCase(case_id, path, None, "unlabeled"))
    if skipped:
        logger.warning("skipped %d unlabeled images whose id is already used, e.g. %s", len(skipped), skipped[0])

    size = tuple(args.size) if args.size is not None else None
    if size is not None and min(size) < 1:
        raise ConversionError(f"--size must be positive, got {size}")
    pct = args.labeled_fraction * 100 if args.labeled_fraction is not None else None
    name = args.name or (f"ISIC_{pct:g}pct" if pct is not None else f"ISIC_{n_labeled}lab")
    raw_root = resolve_root(args.raw_root, "nnUNet_raw")
    preprocessed_root = resolve_root(args.preprocessed_root, "nnUNet_preprocessed")
    folder = prepare_dataset_folder(raw_root, args.dataset_id, name, args.overwrite)
    with removed_on_error(folder):
        shapes = run_parallel(
            partial(_convert_case, folder=folder, size=size, split_rgb=args.rgb_files == "split"),
            jobs,
            args.num_processes,
            desc="ISIC",
        )

        by_role = {r: [c.case_id for c in jobs if c.role == r] for r in ("labeled", "unlabeled", "test")}
        unlabeled_true = [c.case_id for c in jobs if c.role == "unlabeled" and c.mask is not None]
        write_dataset_json(
            folder,
            {0: "R", 1: "G", 2: "B"},
            LABELS,
            len(by_role["labeled"]),
            ".png",
            dataset_name=folder.name,
            description=(
                "ISIC dermoscopy lesion segmentation (binary), RGB PNG; labeled cases in imagesTr/labelsTr, "
                "unlabeled in "
                "imagesUnlabeled (true labels, where known, in labelsUnlabeled), seeded test hold-out in imagesTs/"
                "labelsTs, see split.json."
            ),
            reference="Codella et al., ISBI 2018 (ISIC 2017) / arXiv:1902.03368 (ISIC 2018)",
            licence="ISIC challenge data, generally listed as CC-0 (check the terms of your download)",
            numUnlabeled=len(by_role["unlabeled"]),
            numTest=len(by_role["test"]),
        )
        # one case per patient as far as we know: nnU-Net's own case-wise folds are right, only drop a stale file
        write_splits_final(preprocessed_root, folder.name, [], args.overwrite)
        selection = {
            "method": "seeded_first_n",
            "seed": args.seed,
            "count": n_labeled,
            "fraction": args.labeled_fraction,
            "of": "labeled images left after the test hold-out",
            "test_seed": args.test_seed,
            "test_fraction": args.test_fraction,
        }
        heights, widths = zip(*shapes) if shapes else ((), ())
        record = split_record(
            "dataset_conversion.isic",
            source,
            args,
            by_role,
            selection,
            layout=layout,
            unlabeled_sources=[str(Path(d).resolve()) for d in unlabeled_dirs],
            unlabeled_with_true_labels=len(unlabeled_true),
            skipped_duplicate_unlabeled=skipped,
            image_size={"min": [min(heights), min(widths)], "max": [max(heights), max(widths)]} if shapes else None,
        )
        write_split_record(folder, record)
        remove_empty_role_folders(folder)
        logger.info("%s: %s", folder.name, ", ".join(f"{r} {len(ids)}" for r, ids in by_role.items()))
    return folder


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the ISIC converter."""
    parser = argparse.ArgumentParser(
        prog="nnunet_dumm_convert_isic",
        description="Convert ISIC 2018 Task 1 / ISIC 2017 lesion segmentation to a semi-supervised nnU-Net v2 dataset.",
    )
    parser.add_argument("source", type=Path, help=f"folder with {OFFICIAL_IMAGES}/ + {OFFICIAL_MASKS}/ or train/")
    parser.add_argument("--layout", choices=("auto", "official", "folders"), default="auto", help="source layout")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--labeled-fraction", type=float, help="labeled share of the training images (after test)")
    budget.add_argument("--labeled-count", type=int, help="number of labeled training images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the labeled selection (default: 0)")
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of the labeled images held out as test set"
    )
    parser.add_argument("--test-seed", type=int, default=12345, help="seed of the test hold-out, keep it fixed")
    parser.add_argument(
        "--extra-unlabeled",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="folder of images without masks added to the unlabeled pool (repeatable)",
    )
    parser.add_argument(
        "--no-default-unlabeled", action="store_true", help="ignore the layout's own unlabeled/images folder"
    )
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="resize (images bilinear, masks nearest)")
    parser.add_argument(
        "--rgb-files",
        choices=("single", "split"),
        default="single",
        help="one RGB PNG per case (nnU-Net's natural-image format, default) or three grey PNGs _0000/_0001/_0002",
    )
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``nnunet_dumm_convert_isic``."""
    return run_cli(build_parser(), convert_isic, argv)


if __name__ == "__main__":
    raise SystemExit(main())
