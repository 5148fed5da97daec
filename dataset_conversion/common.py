"""Shared helpers of the dataset converters: output folders, seeded budgets, split records, checks, CLI plumbing.

Every converter writes an nnU-Net v2 raw dataset with the project's extra folders:

* ``imagesTr``/``labelsTr``: labeled training cases (the only ones nnU-Net plans and trains on),
* ``imagesUnlabeled``: unlabeled training cases, same naming and file ending as ``imagesTr``,
* ``labelsUnlabeled``: true labels of the unlabeled cases when known (kept aside, never read by training),
* ``imagesTs``/``labelsTs``: test set, ``imagesVal``/``labelsVal``: an optional separate validation set,
* ``split.json``: the split record (which ids went where, how they were chosen, source and arguments).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "ROLE_FOLDERS",
    "ConversionError",
    "add_common_arguments",
    "budget_count",
    "check_label_values",
    "check_same_shape",
    "dataset_folder_name",
    "group_of",
    "grouped_folds",
    "prepare_dataset_folder",
    "remove_empty_role_folders",
    "removed_on_error",
    "require_file",
    "resize_2d",
    "resolve_root",
    "run_cli",
    "run_parallel",
    "seeded_order",
    "split_record",
    "write_dataset_json",
    "write_splits_final",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: role of a case -> (image folder, label folder) inside the raw dataset folder
ROLE_FOLDERS: dict[str, tuple[str, str]] = {
    "labeled": ("imagesTr", "labelsTr"),
    "unlabeled": ("imagesUnlabeled", "labelsUnlabeled"),
    "test": ("imagesTs", "labelsTs"),
    "validation": ("imagesVal", "labelsVal"),
}

SPLIT_RECORD_VERSION = 1


class ConversionError(RuntimeError):
    """Invalid or missing input; the message names the offending file or case."""


# ----------------------------------------------------------------------------------------------------------------------
# output folders
# ----------------------------------------------------------------------------------------------------------------------


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net folder name ``DatasetXXX_Name``.

    Args:
        dataset_id: nnU-Net dataset id (1-999).
        name: dataset name without the ``DatasetXXX_`` prefix.
    """
    if not 0 < dataset_id < 1000:
        raise ConversionError(f"dataset id must be in 1..999, got {dataset_id}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", name):
        raise ConversionError(f"dataset name {name!r} may only contain letters, digits, '_' and '-'")
    return f"Dataset{dataset_id:03d}_{name}"


def resolve_root(explicit: str | Path | None, env_var: str) -> Path:
    """Output root from an argument, else from nnU-Net's path variable (``nnunetv2.paths``).

    Args:
        explicit: value given on the command line, or None.
        env_var: ``"nnUNet_raw"`` or ``"nnUNet_preprocessed"``.
    """
    if explicit is not None:
        return Path(explicit)
    from nnunetv2 import paths  # lazy: nnU-Net reads the variables at call time since 2.8

    value = getattr(paths, env_var).get()
    if value is None:
        raise ConversionError(f"{env_var} is not set: export it or pass the output folder explicitly")
    return Path(value)


def prepare_dataset_folder(raw_root: Path, dataset_id: int, name: str, overwrite: bool) -> Path:
    """Create an empty raw dataset folder with the role subfolders.

    Refuses an existing folder of the same name unless ``overwrite``, and always refuses another folder with the same
    id, because nnU-Net resolves ``-d ID`` by prefix and would stop on the ambiguity.

    Args:
        raw_root: the ``nnUNet_raw`` folder.
        dataset_id: nnU-Net dataset id.
        name: dataset name without prefix.
        overwrite: delete an existing folder of the same name first.

    Returns:
        The dataset folder.
    """
    folder_name = dataset_folder_name(dataset_id, name)
    folder = raw_root / folder_name
    others = [p.name for p in raw_root.glob(f"Dataset{dataset_id:03d}_*") if p.name != folder_name]
    if others:
        raise ConversionError(
            f"dataset id {dataset_id} is already used by {raw_root / others[0]}; remove it or choose another id"
        )
    if folder.exists():
        if not overwrite:
            raise ConversionError(f"{folder} already exists; pass --overwrite to replace it")
        logger.warning("removing existing %s", folder)
        shutil.rmtree(folder)
    for image_dir, label_dir in ROLE_FOLDERS.values():
        # validation folders only appear when a converter uses them, see remove_empty_role_folders
        (folder / image_dir).mkdir(parents=True)
        (folder / label_dir).mkdir(parents=True)
    return folder


@contextlib.contextmanager
def removed_on_error(folder: Path) -> Iterator[Path]:
    """Delete the half-written ``folder`` when the block raises, so that a corrected rerun needs no --overwrite."""
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def remove_empty_role_folders(folder: Path) -> None:
    """Drop role folders that stayed empty (keeps imagesTr/labelsTr, which nnU-Net requires)."""
    for role, (image_dir, label_dir) in ROLE_FOLDERS.items():
        if role == "labeled":
            continue
        for sub in (image_dir, label_dir):
            path = folder / sub
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()


# ----------------------------------------------------------------------------------------------------------------------
# budgets, seeds, folds
# ----------------------------------------------------------------------------------------------------------------------


def seeded_order(items: Sequence[T], seed: int) -> list[T]:
    """Seeded permutation of sorted ``items``.

    Uses ``np.random.RandomState``, whose stream numpy keeps fixed across versions (``default_rng`` does not promise
    that), so a seed gives the same split on any machine. Sorting first makes the result independent of listing order.
    Taking the first N of one permutation also nests budgets: the 10 % labeled set is inside the 20 % one.
    """
    ordered = sorted(items)
    permutation = np.random.RandomState(seed).permutation(len(ordered))
    return [ordered[i] for i in permutation]


def budget_count(total: int, count: int | None = None, fraction: float | None = None) -> int:
    """Number of items from an absolute count or a fraction (rounded, at least 1 when the fraction is positive).

    Args:
        total: number of items available.
        count: absolute number; exclusive with ``fraction``.
        fraction: share in [0, 1].
    """
    if (count is None) == (fraction is None):
        raise ConversionError("give exactly one of a count or a fraction")
    if fraction is not None:
        if not 0.0 <= fraction <= 1.0:
            raise ConversionError(f"fraction must be in [0, 1], got {fraction}")
        count = round(fraction * total)
        if fraction > 0:
            count = max(count, 1)
    assert count is not None
    if not 0 <= count <= total:
        raise ConversionError(f"requested {count} items but only {total} are available")
    return count


def group_of(case_id: str, pattern: re.Pattern[str] | None) -> str:
    """Group (e.g. patient) of a case: the first capture group of ``pattern``, else its whole match, else the id."""
    if pattern is None:
        return case_id
    match = pattern.search(case_id)
    if match is None:
        raise ConversionError(f"case {case_id!r} does not match the group pattern {pattern.pattern!r}")
    return match.group(1) if pattern.groups else match.group(0)


def grouped_folds(case_groups: Mapping[str, str], seed: int, num_folds: int = 5) -> list[dict[str, list[str]]]:
    """Cross-validation folds in which all cases of a group (patient) share a fold.

    Same recipe as nnU-Net's ``Dataset027_ACDC.create_ACDC_split``: shuffle the groups with a seeded ``RandomState``,
    fold k validates on groups ``k::num_folds``. With fewer groups than folds, one fold per group.

    Args:
        case_groups: case id -> group id, for the labeled cases only.
        seed: shuffle seed.
        num_folds: wanted number of folds.

    Returns:
        nnU-Net ``splits_final.json`` content; empty when there are fewer than two groups.
    """
    groups = np.array(sorted(set(case_groups.values())))
    num_folds = min(num_folds, len(groups))
    if num_folds < 2:
        return []
    np.random.RandomState(seed).shuffle(groups)
    folds = []
    for fold in range(num_folds):
        val_groups = set(groups[fold::num_folds].tolist())
        folds.append(
            {
                "train": sorted(c for c, g in case_groups.items() if g not in val_groups),
                "val": sorted(c for c, g in case_groups.items() if g in val_groups),
            }
        )
    return folds


def write_splits_final(
    preprocessed_root: Path, folder_name: str, folds: list[dict[str, list[str]]], overwrite: bool
) -> Path | None:
    """Write (or clear) ``nnUNet_preprocessed/<name>/splits_final.json``.

    nnU-Net honours an existing file, so a stale one from an earlier conversion of the same name would silently pair
    new cases with old folds: with ``overwrite`` and no folds, it is removed.

    Returns:
        The written file, or None.
    """
    path = preprocessed_root / folder_name / "splits_final.json"
    if path.exists():
        if not overwrite:
            raise ConversionError(f"{path} already exists; pass --overwrite to replace it")
        path.unlink()
    if not folds:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(folds, indent=2))
    return path


# ----------------------------------------------------------------------------------------------------------------------
# records
# ----------------------------------------------------------------------------------------------------------------------


def write_dataset_json(
    folder: Path,
    channel_names: Mapping[int | str, str],
    labels: Mapping[str, int],
    num_training: int,
    file_ending: str,
    **extra: Any,
) -> None:
    """Write ``dataset.json`` with nnU-Net's own ``generate_dataset_json``; ``extra`` keys are stored as they are."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    extra = dict(extra)
    licence = extra.pop("licence", extra.pop("license", "see dataset_conversion/README.md"))
    converted_by = extra.pop("converted_by", "nnunet_dumm dataset_conversion")
    # generate_dataset_json 2.8.1 writes `release` under "citation" (upstream bug): set it afterwards
    citation = extra.pop("citation", None)
    generate_dataset_json(
        str(folder),
        channel_names=dict(channel_names),
        labels=dict(labels),
        num_training_cases=num_training,
        file_ending=file_ending,
        license=licence,
        converted_by=converted_by,
        **extra,
    )
    if citation is not None:
        path = folder / "dataset.json"
        content = json.loads(path.read_text())
        content["citation"] = citation
        path.write_text(json.dumps(content, indent=4))


def split_record(
    converter: str,
    source: Path | str,
    args: argparse.Namespace | Mapping[str, Any],
    cases: Mapping[str, Sequence[str]],
    selection: Mapping[str, Any],
    groups: Mapping[str, Sequence[str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build the ``split.json`` record.

    Args:
        converter: module that wrote the dataset.
        source: input folder.
        args: converter arguments (paths become strings).
        cases: role ("labeled", "unlabeled", "test", ...) -> case ids.
        selection: how the labeled set was chosen (method, seed or list, count).
        groups: role -> group (patient) ids, when cases are grouped.
        **extra: further keys (assumptions, skipped files, ...).
    """
    arguments = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    record: dict[str, Any] = {
        "format_version": SPLIT_RECORD_VERSION,
        "converter": converter,
        "source": str(Path(source).resolve()),
        "arguments": {k: _jsonable(v) for k, v in arguments.items() if k != "func"},
        "selection": dict(selection),
        "counts": {role: len(ids) for role, ids in cases.items()},
    }
    record.update({role: sorted(ids) for role, ids in cases.items()})
    if groups is not None:
        record["groups"] = {role: list(ids) for role, ids in groups.items()}
    record.update(extra)
    return record


def write_split_record(folder: Path, record: Mapping[str, Any]) -> Path:
    """Write ``split.json`` into the dataset folder."""
    path = folder / "split.json"
    path.write_text(json.dumps(record, indent=2))
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------------------------------
# checks and image helpers
# ----------------------------------------------------------------------------------------------------------------------


def require_file(path: Path, what: str = "file") -> Path:
    """Return ``path`` or raise a ConversionError naming it."""
    if not path.is_file():
        raise ConversionError(f"missing {what}: {path}")
    return path


def check_label_values(label: np.ndarray, allowed: Iterable[int], path: Path | str) -> None:
    """Raise when ``label`` holds values outside ``allowed``."""
    allowed = sorted({int(v) for v in allowed})
    found = np.unique(label)
    # readers may return floats (nnU-Net's do): print 7 rather than 7.0 when the value is integral
    unexpected = [int(v) if float(v).is_integer() else float(v) for v in found if v not in allowed]
    if unexpected:
        raise ConversionError(f"{path}: label values {unexpected} outside the expected set {allowed}")


def check_same_shape(
    image_shape: Sequence[int], label_shape: Sequence[int], image: Path | str, label: Path | str
) -> None:
    """Raise when image and label grids differ."""
    if tuple(image_shape) != tuple(label_shape):
        raise ConversionError(
            f"shape mismatch: image {image} has {tuple(image_shape)}, label {label} has {tuple(label_shape)}"
        )


def resize_2d(array: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    """Resize the last two axes of ``array`` (order 1: linear for images, 0: nearest for labels).

    Label maps keep their dtype and values exactly; no anti-aliasing so that both orders sample the same grid.
    """
    from skimage.transform import resize

    out_shape = tuple(array.shape[:-2]) + tuple(shape)
    resized = resize(array, out_shape, order=order, preserve_range=True, anti_aliasing=False, mode="edge")
    if order == 0:
        return resized.astype(array.dtype)
    return resized.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------------
# CLI plumbing
# ----------------------------------------------------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Output, id, overwrite and worker arguments shared by all converters."""
    group = parser.add_argument_group("output")
    group.add_argument("-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset id of the new dataset")
    group.add_argument("--name", default=None, help="dataset name without the DatasetXXX_ prefix (default: derived)")
    group.add_argument("--raw-root", type=Path, default=None, help="output nnUNet_raw folder (default: $nnUNet_raw)")
    group.add_argument(
        "--preprocessed-root",
        type=Path,
        default=None,
        help="nnUNet_preprocessed folder for splits_final.json (default: $nnUNet_preprocessed)",
    )
    group.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder of that name")
    group.add_argument("-np", "--num-processes", type=int, default=1, help="worker processes (default: 1)")


def run_parallel(fn: Callable[[T], R], items: Sequence[T], num_processes: int, desc: str) -> list[R]:
    """Map ``fn`` over ``items`` with a tqdm bar, in worker processes when ``num_processes > 1``.

    Results keep the order of ``items``. ``fn`` must be a module-level function (picklable).
    """
    from tqdm import tqdm

    if num_processes <= 1 or len(items) < 2:
        return [fn(item) for item in tqdm(items, desc=desc, unit="case")]
    with multiprocessing.get_context("spawn").Pool(num_processes) as pool:
        return list(tqdm(pool.imap(fn, items), total=len(items), desc=desc, unit="case"))


def run_cli(
    parser: argparse.ArgumentParser, convert: Callable[[argparse.Namespace], Path], argv: Sequence[str] | None
) -> int:
    """Parse ``argv``, run ``convert`` and turn a ConversionError into a one-line message and exit status 1."""
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    try:
        folder = convert(args)
    except ConversionError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    logger.info("wrote %s in %.1f s", folder, time.perf_counter() - start)
    return 0
