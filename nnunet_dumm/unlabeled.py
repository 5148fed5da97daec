"""Unlabeled images in nnU-Net datasets: discovery, validation and preprocessing with the dataset's own plans.

Convention: ``nnUNet_raw/DatasetXXX/imagesUnlabeled/<case>_<channel>.<file_ending>``, named like ``imagesTr``.
Unlabeled cases are preprocessed with the labeled dataset's plans into a sibling folder
``nnUNet_preprocessed/DatasetXXX/<data_identifier>_unlabeled/`` and never into the labeled folder, because
nnU-Net's ``get_identifiers`` and ``do_split`` would put them into the cross-validation splits.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_json, write_pickle
from tqdm import tqdm

from nnunet_dumm.claims import Claims, process_scratch_folder, remove_stale_scratch_folders
from nnunet_dumm.integrity import DamagedFile, fingerprint, first_damaged

__all__ = [
    "UNLABELED_IMAGES_FOLDER",
    "TRUE_LABELS_SUBFOLDER",
    "UNLABELED_TRUE_LABELS_FOLDER",
    "UnlabeledDataError",
    "UnlabeledPreprocessingTarget",
    "completed_cases",
    "damaged_cases",
    "find_unlabeled_cases",
    "is_completed",
    "load_preprocessed_image",
    "preprocess_unlabeled",
    "preprocessed_shape",
    "unlabeled_preprocessed_folder",
]

UNLABELED_IMAGES_FOLDER = "imagesUnlabeled"
# True labels of cases used as unlabeled (a split made from a labeled dataset). Training never reads them;
# diagnostics use them to measure pseudo-label quality.
UNLABELED_TRUE_LABELS_FOLDER = "labelsUnlabeled"
# preprocessed true labels of unlabeled cases, read by diagnostics only
TRUE_LABELS_SUBFOLDER = "true_labels"
# key of the arrays' sizes and CRC-32 in a case's properties (.pkl); nnU-Net ignores keys it does not know
_FILES_KEY = "dumm_files"


class UnlabeledDataError(ValueError):
    """Bad unlabeled input. The message names the file and what is wrong with it."""


def unlabeled_preprocessed_folder(dataset_name: str, data_identifier: str) -> Path:
    """Where the unlabeled cases of a dataset/configuration live: a sibling of nnU-Net's labeled folder."""
    from nnunetv2.paths import nnUNet_preprocessed

    if nnUNet_preprocessed is None:
        raise RuntimeError("nnUNet_preprocessed is not set; see nnU-Net's documentation/setting_up_paths.md")
    return Path(nnUNet_preprocessed) / dataset_name / f"{data_identifier}_unlabeled"


def completed_cases(folder: str | Path) -> list[str]:
    """Cases whose preprocessing finished. The ``.pkl`` is moved into place last, so it marks completion."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.pkl") if is_completed(folder, p.stem))


def is_completed(folder: str | Path, case: str) -> bool:
    """``case in completed_cases(folder)`` for one case, without listing the folder (a per-case check inside a loop
    over the pool would make preprocessing quadratic in the pool size)."""
    folder = Path(folder)
    return (folder / f"{case}.pkl").is_file() and (folder / f"{case}.b2nd").is_file()


def damaged_cases(folder: str | Path, checksum: bool = False) -> dict[str, Path]:
    """Finished cases whose arrays differ from what was written: ``{case: first damaged file}``.

    Sizes are always compared (a partial copy, a truncated file); with ``checksum`` also the CRC-32 (bit rot).
    """
    from batchgenerators.utilities.file_and_folder_operations import load_pickle

    folder, damaged = Path(folder), {}
    for case in completed_cases(folder):
        try:
            recorded = load_pickle(str(folder / f"{case}.pkl")).get(_FILES_KEY)
        except Exception:  # a torn or rotten pickle
            damaged[case] = folder / f"{case}.pkl"
            continue
        path = first_damaged(folder, recorded, checksum) if recorded else None
        if path is not None:
            damaged[case] = path
    return damaged


def preprocessed_shape(folder: str | Path, case: str) -> tuple[int, ...]:
    """The spatial shape of a preprocessed case, read from its blosc2 header only."""
    import blosc2

    return tuple(blosc2.open(urlpath=str(Path(folder) / f"{case}.b2nd"), mode="r").shape[1:])


def load_preprocessed_image(folder: str | Path, case: str) -> np.ndarray:
    """The preprocessed image ``(c, *spatial)`` of one case, read fully into memory."""
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    try:
        return nnUNetDatasetBlosc2(str(folder), [case]).load_case(case)[0][:]
    except Exception as e:  # blosc2 and pickle raise anything on a damaged file
        raise DamagedFile(f"{Path(folder) / case}.b2nd: the preprocessed unlabeled case cannot be read ({e}); "
                          "rerun nnUNetv2_dumm_preprocess_unlabeled with --verify to redo damaged cases") from e


def _files_per_labeled_case(raw_folder: Path, file_ending: str) -> int:
    from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder

    images_tr = raw_folder / "imagesTr"
    identifiers = get_identifiers_from_splitted_dataset_folder(str(images_tr), file_ending)
    if len(identifiers) == 0:
        raise UnlabeledDataError(f"{images_tr}: no labeled images with ending '{file_ending}'")
    return len(list(images_tr.glob(f"{identifiers[0]}_[0-9][0-9][0-9][0-9]{file_ending}")))


def find_unlabeled_cases(raw_folder: str | Path, dataset_json: dict | None = None) -> dict[str, list[str]]:
    """Lists ``imagesUnlabeled/`` as ``{case: [channel files]}`` and checks names against the labeled cases.

    Raises:
        UnlabeledDataError: missing dataset.json or folder, empty folder, a file with the wrong ending or name,
            a case with the wrong number of files, or a case id that collides with a labeled case.
    """
    from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder

    raw_folder = Path(raw_folder)
    if dataset_json is None:
        dataset_json_file = raw_folder / "dataset.json"
        if not dataset_json_file.is_file():
            raise UnlabeledDataError(f"{dataset_json_file}: missing; every nnU-Net raw dataset needs a dataset.json")
        dataset_json = load_json(str(dataset_json_file))
    file_ending = dataset_json["file_ending"]
    folder = raw_folder / UNLABELED_IMAGES_FOLDER
    if not folder.is_dir():
        raise UnlabeledDataError(f"{folder}: missing; put unlabeled images there, named like imagesTr")
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not files:
        raise UnlabeledDataError(f"{folder}: empty; there are no unlabeled images to use")
    for f in files:
        if not f.name.endswith(file_ending):
            raise UnlabeledDataError(f"{f}: wrong file ending; dataset.json says file_ending is '{file_ending}'")
        stem = f.name[: -len(file_ending)]
        if len(stem) < 6 or stem[-5] != "_" or not stem[-4:].isdigit():
            raise UnlabeledDataError(f"{f}: name must be CASE_XXXX{file_ending} (XXXX = 4-digit channel index)")

    expected_files = _files_per_labeled_case(raw_folder, file_ending)
    labeled = set(get_identifiers_from_splitted_dataset_folder(str(raw_folder / "imagesTr"), file_ending))
    cases: dict[str, list[str]] = {}
    for f in files:
        cases.setdefault(f.name[: -len(file_ending) - 5], []).append(str(f))
    for case, case_files in cases.items():
        if case in labeled:
            raise UnlabeledDataError(f"{case_files[0]}: case id '{case}' is also a labeled case in imagesTr")
        if len(case_files) != expected_files:
            raise UnlabeledDataError(
                f"{case_files[0]}: case '{case}' has {len(case_files)} file(s), labeled cases have {expected_files}"
            )
    return cases


@dataclass(frozen=True)
class UnlabeledPreprocessingTarget:
    """Everything a (possibly spawned) worker needs to preprocess one dataset's unlabeled cases."""

    plans_file: str
    dataset_json_file: str
    configuration: str
    output_folder: str
    spatial_dims_of_labeled: int

    def preprocess_case(self, case: str, image_files: list[str], true_label_file: str | None = None) -> None:
        """Preprocesses one case with nnU-Net's preprocessor and writes it atomically.

        A true label (``labelsUnlabeled/``) is resampled with the image into ``true_labels/<case>.npy`` for
        diagnostics only; the case's own segmentation keeps nothing but nnU-Net's nonzero mask.
        """
        from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params, nnUNetDatasetBlosc2
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        plans_manager = PlansManager(self.plans_file)
        configuration_manager = plans_manager.get_configuration(self.configuration)
        dataset_json = load_json(self.dataset_json_file)
        data, properties = _read_checked(plans_manager, image_files, dataset_json, self.spatial_dims_of_labeled)
        true_label = None
        if true_label_file is not None:
            true_label, _ = plans_manager.image_reader_writer_class().read_seg(true_label_file)
        preprocessor = configuration_manager.preprocessor_class(verbose=False)
        data, seg, properties = preprocessor.run_case_npy(
            data, true_label, properties, plans_manager, configuration_manager, dataset_json
        )
        if true_label is not None:
            true_label, seg = np.maximum(seg, 0).astype(np.uint8), np.where(seg < 0, -1, 0)
        # nnU-Net's loader reads class_locations eagerly; unlabeled cases have none, so foreground-forced
        # crops fall back to random crops until pseudo-labels exist.
        label_manager = plans_manager.get_label_manager(dataset_json)
        properties["class_locations"] = {label: [] for label in label_manager.foreground_labels}
        data = data.astype(np.float32, copy=False)
        seg = seg.astype(np.int16, copy=False)
        patch_size = tuple(configuration_manager.patch_size)
        blocks, chunks = comp_blosc2_params(data.shape, patch_size, data.itemsize)
        blocks_seg, chunks_seg = comp_blosc2_params(seg.shape, patch_size, seg.itemsize)

        output = Path(self.output_folder)
        partial = process_scratch_folder(output)
        try:
            nnUNetDatasetBlosc2.save_case(
                data, seg, properties, str(partial / case),
                chunks=chunks, blocks=blocks, chunks_seg=chunks_seg, blocks_seg=blocks_seg,
            )
            # sizes and CRC-32 of the arrays, so that a damaged copy is found before it is trained on
            properties[_FILES_KEY] = fingerprint(partial / f"{case}{s}" for s in (".b2nd", "_seg.b2nd"))
            write_pickle(properties, str(partial / f"{case}.pkl"))
            if true_label is not None:
                (output / TRUE_LABELS_SUBFOLDER).mkdir(exist_ok=True)
                np.save(partial / f"{case}_true.npy", true_label[0])
                os.replace(partial / f"{case}_true.npy", output / TRUE_LABELS_SUBFOLDER / f"{case}.npy")
        except OSError as e:
            for leftover in partial.glob(f"{case}*"):
                leftover.unlink()
            if e.errno == errno.ENOSPC:
                raise OSError(errno.ENOSPC, f"no space left on the device while preprocessing {case} into "
                              f"{output}; nothing half-written was kept. Free disk space and rerun: finished cases "
                              "are kept") from e
            raise
        # The pickle goes last: completed_cases() treats a case as done only once it is in place.
        for suffix in (".b2nd", "_seg.b2nd", ".pkl"):
            os.replace(partial / f"{case}{suffix}", output / f"{case}{suffix}")


def _spatial_dims(properties: dict, data: np.ndarray) -> int:
    # nnU-Net's readers always return 4-D arrays; SimpleITK-based readers keep the file's own dimensionality.
    if "sitk_stuff" in properties:
        return len(properties["sitk_stuff"]["spacing"])
    return 2 if data.shape[1] == 1 else 3


def _read_checked(plans_manager, image_files: list[str], dataset_json: dict, spatial_dims: int | None):
    reader = plans_manager.image_reader_writer_class()
    try:
        data, properties = reader.read_images(image_files)
    except Exception as e:  # the readers raise anything from RuntimeError to OSError on a corrupt file
        raise UnlabeledDataError(f"{image_files[0]}: cannot be read as an image ({type(e).__name__}: {e})") from e
    num_channels = len(dataset_json["channel_names"])
    if data.shape[0] != num_channels:
        raise UnlabeledDataError(
            f"{image_files[0]}: has {data.shape[0]} channel(s), dataset.json declares {num_channels}"
        )
    if spatial_dims is not None and _spatial_dims(properties, data) != spatial_dims:
        raise UnlabeledDataError(
            f"{image_files[0]}: is {_spatial_dims(properties, data)}-D, the labeled images are {spatial_dims}-D"
        )
    if not np.all(np.isfinite(data)):
        raise UnlabeledDataError(f"{image_files[0]}: contains NaN or infinite values")
    if np.ptp(data) == 0:
        raise UnlabeledDataError(f"{image_files[0]}: is constant (every pixel {data.flat[0]}); nothing to segment")
    return data, properties


def _labeled_spatial_dims(raw_folder: Path, plans_manager, dataset_json: dict) -> int:
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    first = next(iter(get_filenames_of_train_images_and_targets(str(raw_folder), dataset_json).values()))
    data, properties = plans_manager.image_reader_writer_class().read_images(first["images"])
    return _spatial_dims(properties, data)


def _existing(path: Path) -> str | None:
    return str(path) if path.is_file() else None


def _run_one(args: tuple[UnlabeledPreprocessingTarget, str, list[str], str | None]) -> bool:
    """Preprocesses one case unless another process (a second fold started at the same time) has claimed or
    finished it; True if this process preprocessed it."""
    target, case, files, true_label_file = args
    claims = Claims(target.output_folder)
    if is_completed(target.output_folder, case) or not claims.claim(case):
        return False
    try:
        if is_completed(target.output_folder, case):
            return False
        target.preprocess_case(case, files, true_label_file)
        return True
    finally:
        claims.release(case)


def preprocess_unlabeled(
    dataset_name_or_id: str | int,
    configuration: str,
    plans_identifier: str = "nnUNetPlans",
    num_processes: int = 1,
    verbose: bool = True,
    verify: bool = False,
) -> Path:
    """Preprocesses ``imagesUnlabeled/`` with the dataset's plans; cases already done are skipped (resume).

    Every image is checked (readable, channel count, dimensionality, finite, not constant) before anything is
    written, so bad input leaves no partial output. Finished cases whose files lost bytes (or, with ``verify``,
    whose CRC-32 changed) are preprocessed again.

    Returns:
        The output folder, ``nnUNet_preprocessed/<dataset>/<data_identifier>_unlabeled``.
    """
    from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset_name = maybe_convert_to_dataset_name(dataset_name_or_id)
    raw_folder = Path(nnUNet_raw) / dataset_name
    preprocessed = Path(nnUNet_preprocessed) / dataset_name
    plans_file = preprocessed / f"{plans_identifier}.json"
    if not plans_file.is_file():
        raise FileNotFoundError(
            f"{plans_file}: missing. Plan the labeled dataset first: "
            f"nnUNetv2_plan_and_preprocess -d {dataset_name_or_id} -c {configuration}"
        )
    dataset_json_file = preprocessed / "dataset.json"
    if not dataset_json_file.is_file():
        raise UnlabeledDataError(f"{dataset_json_file}: missing; nnUNetv2_plan_and_preprocess writes it")
    dataset_json = load_json(str(dataset_json_file))
    cases = find_unlabeled_cases(raw_folder, dataset_json)
    plans_manager = PlansManager(str(plans_file))
    if configuration not in plans_manager.available_configurations:
        raise ValueError(f"{plans_file}: has no configuration '{configuration}' "
                         f"(available: {plans_manager.available_configurations})")
    if plans_manager.get_label_manager(dataset_json).has_regions:
        raise NotImplementedError("region-based datasets are not supported: pseudo-labels are argmax label maps")
    data_identifier = plans_manager.get_configuration(configuration).data_identifier
    output = unlabeled_preprocessed_folder(dataset_name, data_identifier)
    spatial_dims = _labeled_spatial_dims(raw_folder, plans_manager, dataset_json)

    for case, path in damaged_cases(output, checksum=verify).items():
        print(f"{path}: damaged (differs from what was written); preprocessing {case} again")
        for suffix in (".pkl", ".b2nd", "_seg.b2nd"):  # the marker first
            (output / f"{case}{suffix}").unlink(missing_ok=True)
    done = set(completed_cases(output))
    todo = [c for c in sorted(cases) if c not in done]
    # Validate every pending image first: a bad file found halfway would otherwise leave a partial folder.
    for case in tqdm(todo, desc="checking unlabeled images", disable=not verbose or not todo):
        _read_checked(plans_manager, cases[case], dataset_json, spatial_dims)

    output.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch_folders(output)  # leftovers of an interrupted run
    target = UnlabeledPreprocessingTarget(str(plans_file), str(dataset_json_file), configuration, str(output),
                                          spatial_dims)
    true_labels = raw_folder / UNLABELED_TRUE_LABELS_FOLDER
    jobs = [(target, c, cases[c], _existing(true_labels / f"{c}{dataset_json['file_ending']}")) for c in todo]
    progress = tqdm(total=len(cases), initial=len(done), desc="preprocessing unlabeled", unit="case",
                    disable=not verbose)
    preprocessed_here = 0
    if num_processes <= 1:
        for job in jobs:
            preprocessed_here += _run_one(job)
            progress.update()
    else:
        with multiprocessing.get_context("spawn").Pool(num_processes) as pool:
            for done_here in pool.imap_unordered(_run_one, jobs):
                preprocessed_here += done_here
                progress.update()
    # cases claimed by another process that runs at the same time: wait until they are finished
    while pending := [c for c in todo if not is_completed(output, c)]:
        progress.set_postfix_str(f"waiting for {len(pending)} case(s) preprocessed by another process")
        time.sleep(1.0)
        for job in jobs:  # a claim of a process that died meanwhile is stale: take the case over
            if job[1] in pending:
                preprocessed_here += _run_one(job)
    progress.close()
    if verbose:
        by_others = f", {len(todo) - preprocessed_here} by another process" if preprocessed_here < len(todo) else ""
        print(f"{len(cases)} unlabeled cases ({len(todo)} new: {preprocessed_here} preprocessed here{by_others}; "
              f"{len(done)} already done) in {output}")
    return output

