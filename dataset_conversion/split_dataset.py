"""Make a semi-supervised copy of any fully labeled nnU-Net v2 raw dataset.

A seeded share (fraction or count) of the training cases stays labeled (``imagesTr``/``labelsTr``); the other training
cases are copied to ``imagesUnlabeled`` with their labels kept aside in ``labelsUnlabeled``. Cases can be grouped by
a regular expression on the case id (``--group-pattern '^(patient\\d+)'``): a group is labeled or unlabeled as a whole
and ``splits_final.json`` keeps each group in one fold. ``imagesTs``/``labelsTs`` (and an existing unlabeled pool) are
copied as they are.

Example:
    python -m dataset_conversion.split_dataset 27 -d 917 --labeled-fraction 0.1 --group-pattern '^(patient\\d+)'
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
from functools import partial
from pathlib import Path

from dataset_conversion.common import (
    ROLE_FOLDERS,
    ConversionError,
    add_common_arguments,
    budget_count,
    check_label_values,
    check_same_shape,
    group_of,
    grouped_folds,
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

__all__ = ["convert_split", "main", "resolve_source", "training_cases"]

logger = logging.getLogger(__name__)

# dataset.json keys that are rewritten rather than copied from the source
_REWRITTEN_KEYS = (
    "channel_names",
    "labels",
    "numTraining",
    "file_ending",
    "name",
    "numUnlabeled",
    "numTest",
    "source_dataset",
)


def resolve_source(source: str, raw_root: Path | None) -> Path:
    """Source dataset folder from a path, a ``DatasetXXX_Name`` or an id (looked up in the raw root)."""
    path = Path(source)
    if path.is_dir():
        return path
    root = resolve_root(raw_root, "nnUNet_raw")
    if source.isdigit():
        matches = sorted(root.glob(f"Dataset{int(source):03d}_*"))
        if len(matches) != 1:
            raise ConversionError(f"dataset id {source}: found {[m.name for m in matches]} in {root}, want exactly one")
        return matches[0]
    if (root / source).is_dir():
        return root / source
    raise ConversionError(f"source dataset not found: {source} (neither a folder nor a dataset in {root})")


def training_cases(image_dir: Path, label_dir: Path, file_ending: str) -> dict[str, tuple[list[Path], Path]]:
    """Case id -> (channel files in channel order, label file), checking that every case is complete.

    Raises:
        ConversionError: on a case without label, a label without image, or a case missing a channel.
    """
    if not image_dir.is_dir():
        raise ConversionError(f"missing folder: {image_dir}")
    pattern = re.compile(r"^(.+)_(\d{4})" + re.escape(file_ending) + "$")
    channels: dict[str, dict[int, Path]] = {}
    for path in sorted(image_dir.iterdir()):
        match = pattern.match(path.name)
        if match:
            channels.setdefault(match.group(1), {})[int(match.group(2))] = path
    if not channels:
        raise ConversionError(f"no images named CASE_XXXX{file_ending} in {image_dir}")
    # the union of channel indices: an incomplete case is named, whichever case happens to come first
    expected = sorted(set().union(*channels.values()))
    cases = {}
    for case_id, files in channels.items():
        if sorted(files) != expected:
            raise ConversionError(f"case {case_id} in {image_dir} has channels {sorted(files)}, expected {expected}")
        label = label_dir / f"{case_id}{file_ending}"
        if not label.is_file():
            raise ConversionError(f"image {files[expected[0]]} has no label (expected {label})")
        cases[case_id] = ([files[c] for c in expected], label)
    if label_dir.is_dir():
        orphans = sorted(p for p in label_dir.glob(f"*{file_ending}") if p.name[: -len(file_ending)] not in cases)
        if orphans:
            raise ConversionError(f"label {orphans[0]} has no image in {image_dir}")
    return cases


def _copy_case(
    job: tuple[str, list[Path], Path, str], folder: Path, reader_class: type | None, allowed: list[int]
) -> str:
    """Optionally check one case with nnU-Net's reader, then copy it to its role folders."""
    case_id, images, label, role = job
    for path in [*images, label]:
        if not path.is_file():
            raise ConversionError(f"missing file: {path}")
    if reader_class is not None:
        reader = reader_class()
        try:
            data, _ = reader.read_images([str(p) for p in images])
        except Exception as error:  # the readers raise anything from RuntimeError to AssertionError
            raise ConversionError(f"cannot read {images}: {error}") from error
        try:
            seg, _ = reader.read_seg(str(label))
        except Exception as error:
            raise ConversionError(f"cannot read {label}: {error}") from error
        check_same_shape(data.shape[1:], seg.shape[1:], images[0], label)
        check_label_values(seg, allowed, label)
    image_dir, label_dir = (folder / d for d in ROLE_FOLDERS[role])
    for path in images:
        shutil.copy2(path, image_dir / path.name)
    shutil.copy2(label, label_dir / label.name)
    return case_id


def convert_split(args: argparse.Namespace) -> Path:
    """Split the source dataset as described by the parsed command-line ``args``; returns the new dataset folder."""
    source = resolve_source(args.source, args.raw_root)
    dataset_json_path = source / "dataset.json"
    if not dataset_json_path.is_file():
        raise ConversionError(f"missing file: {dataset_json_path}")
    try:
        dataset_json = json.loads(dataset_json_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConversionError(f"cannot read {dataset_json_path}: {error}") from error
    if "dataset" in dataset_json:
        raise ConversionError(f"{dataset_json_path}: datasets listing files in a 'dataset' key are not supported")
    file_ending = dataset_json["file_ending"]
    cases = training_cases(source / "imagesTr", source / "labelsTr", file_ending)
    if dataset_json.get("numTraining") != len(cases):
        logger.warning(
            "%s says numTraining=%s, found %d cases", dataset_json_path, dataset_json.get("numTraining"), len(cases)
        )

    pattern = re.compile(args.group_pattern) if args.group_pattern else None
    case_groups = {c: group_of(c, pattern) for c in cases}
    groups = sorted(set(case_groups.values()))
    n_labeled = budget_count(len(groups), count=args.labeled_count, fraction=args.labeled_fraction)
    labeled_groups = set(seeded_order(groups, args.seed)[:n_labeled])
    roles = {c: "labeled" if g in labeled_groups else "unlabeled" for c, g in case_groups.items()}

    reader_class, allowed = None, []
    if not args.skip_checks:
        from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
        from nnunetv2.utilities.label_handling.label_handling import LabelManager

        first_image = str(next(iter(cases.values()))[0][0])
        reader_class = determine_reader_writer_from_dataset_json(dataset_json, first_image, verbose=False)
        manager = LabelManager(dataset_json["labels"], regions_class_order=dataset_json.get("regions_class_order"))
        allowed = list(manager.all_labels) + ([manager.ignore_label] if manager.has_ignore_label else [])

    source_name = source.name.split("_", 1)[1] if re.match(r"^Dataset\d{3}_", source.name) else source.name
    name = args.name or f"{source_name}_{n_labeled}{'grp' if pattern else ''}lab"
    raw_root = resolve_root(args.output_raw_root or args.raw_root, "nnUNet_raw")
    preprocessed_root = resolve_root(args.preprocessed_root, "nnUNet_preprocessed")
    folder = prepare_dataset_folder(raw_root, args.dataset_id, name, args.overwrite)
    with removed_on_error(folder):
        if folder.resolve() == source.resolve():
            raise ConversionError("the new dataset folder is the source folder")
        jobs = [(c, images, label, roles[c]) for c, (images, label) in cases.items()]
        run_parallel(
            partial(_copy_case, folder=folder, reader_class=reader_class, allowed=allowed),
            jobs,
            args.num_processes,
            desc="split",
        )

        # test set and an already existing unlabeled pool travel unchanged
        copied: dict[str, list[str]] = {}
        for role in ("test", "unlabeled"):
            for sub in ROLE_FOLDERS[role]:
                if (source / sub).is_dir():
                    for path in sorted((source / sub).iterdir()):
                        if (folder / sub / path.name).exists():
                            raise ConversionError(f"{path} collides with a training case of the same name")
                        shutil.copy2(path, folder / sub / path.name)
                        copied.setdefault(sub, []).append(path.name)
        test_ids = sorted({p[: -len(file_ending)].rsplit("_", 1)[0] for p in copied.get("imagesTs", [])})
        by_role = {
            "labeled": sorted(c for c, r in roles.items() if r == "labeled"),
            "unlabeled": sorted(c for c, r in roles.items() if r == "unlabeled"),
            "test": test_ids,
        }

        extra = {k: v for k, v in dataset_json.items() if k not in _REWRITTEN_KEYS}
        unlabeled_files = list((folder / "imagesUnlabeled").glob(f"*{file_ending}"))
        write_dataset_json(
            folder,
            dataset_json["channel_names"],
            dataset_json["labels"],
            len(by_role["labeled"]),
            file_ending,
            dataset_name=folder.name,
            **extra,
            numUnlabeled=len({p.name[: -len(file_ending)].rsplit("_", 1)[0] for p in unlabeled_files}),
            numTest=len(test_ids),
            source_dataset=source.name,
        )
        folds = grouped_folds({c: case_groups[c] for c in by_role["labeled"]}, args.fold_seed) if pattern else []
        if pattern and not folds:
            logger.warning("fewer than 2 labeled groups: no splits_final.json written")
        splits_path = write_splits_final(preprocessed_root, folder.name, folds, args.overwrite)
        selection = {
            "method": "seeded_first_n",
            "seed": args.seed,
            "count": n_labeled,
            "fraction": args.labeled_fraction,
            "unit": "group" if pattern else "case",
            "group_pattern": args.group_pattern,
        }
        group_lists = None
        if pattern:
            group_lists = {r: sorted({case_groups[c] for c in ids}) for r, ids in by_role.items() if r != "test"}
        record = split_record(
            "dataset_conversion.split_dataset",
            source,
            args,
            by_role,
            selection,
            groups=group_lists,
            fold_seed=args.fold_seed,
            splits_final=str(splits_path) if splits_path else None,
            copied_unchanged={k: len(v) for k, v in copied.items()},
        )
        write_split_record(folder, record)
        remove_empty_role_folders(folder)
        logger.info("%s: %s", folder.name, ", ".join(f"{r} {len(ids)}" for r, ids in by_role.items()))
    return folder


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the generic splitter."""
    parser = argparse.ArgumentParser(
        prog="nnunet_dumm_split_dataset",
        description="Copy a fully labeled nnU-Net v2 raw dataset into a labeled + unlabeled (semi-supervised) one.",
    )
    parser.add_argument("source", help="source dataset: folder, DatasetXXX_Name or id (looked up in --raw-root)")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--labeled-fraction", type=float, help="labeled share of the training cases (or groups)")
    budget.add_argument("--labeled-count", type=int, help="number of labeled training cases (or groups)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the labeled selection (default: 0)")
    parser.add_argument(
        "--group-pattern",
        help=r"regex on the case id whose first group (or match) names the group, e.g. '^(patient\d+)'",
    )
    parser.add_argument("--fold-seed", type=int, default=1234, help="seed of the grouped 5-fold split")
    parser.add_argument(
        "--skip-checks", action="store_true", help="copy without reading images and labels (no shape/label checks)"
    )
    parser.add_argument(
        "--output-raw-root", type=Path, default=None, help="nnUNet_raw of the new dataset (default: --raw-root)"
    )
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``nnunet_dumm_split_dataset``."""
    return run_cli(build_parser(), convert_split, argv)


if __name__ == "__main__":
    raise SystemExit(main())
